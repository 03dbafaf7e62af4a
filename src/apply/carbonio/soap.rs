//! A client of Carbonio's admin SOAP API (`urn:zimbraAdmin`), for the six requests apply needs:
//! `AuthRequest` once, then `CreateAccountRequest`, `AddAccountAliasRequest`,
//! `ModifyAccountRequest`, `CreateDistributionListRequest` and `AddDistributionListMemberRequest`,
//! written as the published request shapes give them (SOAP 1.2 envelopes, the auth token in the
//! `urn:zimbra` context header). Every request has the plan's deadline and every answer is read
//! up to a bound. A fault comes back as its code (`account.ACCOUNT_EXISTS`) and reason.
//!
//! This module must not decide what to write, and must never put the admin password, a new
//! account's password or the auth token into an error, a log line or a `Debug` output.

use std::time::Duration;

use quick_xml::events::Event;

use crate::spec::SoapSettings;

/// The SOAP 1.2 envelope namespace, which Carbonio answers in.
const SOAP_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
/// The most of an answer read; Carbonio's answers to these requests are a few kilobytes.
const MAX_BODY: usize = 4 << 20;

/// Why a SOAP request did not do what it was sent for. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoapError {
    #[error("cannot set up the connection to {url}: {message}")]
    Setup { url: String, message: String },
    #[error("cannot read the admin password: {0}")]
    Secret(String),
    #[error("{request} to {url}: {message}")]
    Transport {
        request: &'static str,
        url: String,
        message: String,
    },
    #[error("{request}: Carbonio answered with something that is not a SOAP answer ({message})")]
    Answer {
        request: &'static str,
        message: String,
    },
    #[error("{request}: fault {code}: {reason}")]
    Fault {
        request: &'static str,
        code: String,
        reason: String,
    },
}

impl SoapError {
    /// The fault code, when Carbonio answered with a fault.
    pub fn fault_code(&self) -> Option<&str> {
        match self {
            SoapError::Fault { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// One of the write requests, with what it carries. Attribute names may carry Carbonio's `+`
/// (add values) and `-` (remove values) prefixes; an empty value removes the attribute.
#[derive(Clone, PartialEq, Eq)]
pub enum Request {
    CreateAccount {
        name: String,
        /// `None`: no password (external authentication).
        password: Option<String>,
        attrs: Vec<(String, String)>,
    },
    AddAccountAlias {
        id: String,
        alias: String,
    },
    ModifyAccount {
        id: String,
        attrs: Vec<(String, String)>,
    },
    CreateDistributionList {
        name: String,
        attrs: Vec<(String, String)>,
    },
    AddDistributionListMember {
        id: String,
        members: Vec<String>,
    },
}

impl std::fmt::Debug for Request {
    // Never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name())
    }
}

impl Request {
    /// The request's element name.
    pub fn name(&self) -> &'static str {
        match self {
            Request::CreateAccount { .. } => "CreateAccountRequest",
            Request::AddAccountAlias { .. } => "AddAccountAliasRequest",
            Request::ModifyAccount { .. } => "ModifyAccountRequest",
            Request::CreateDistributionList { .. } => "CreateDistributionListRequest",
            Request::AddDistributionListMember { .. } => "AddDistributionListMemberRequest",
        }
    }

    /// The request element, as it goes into the SOAP body.
    pub fn to_xml(&self) -> String {
        let mut out = format!("<{} xmlns=\"urn:zimbraAdmin\">", self.name());
        let attrs = |out: &mut String, attrs: &[(String, String)]| {
            for (n, v) in attrs {
                out.push_str(&format!("<a n=\"{}\">{}</a>", esc(n), esc(v)));
            }
        };
        match self {
            Request::CreateAccount {
                name,
                password,
                attrs: a,
            } => {
                out.push_str(&element("name", name));
                if let Some(p) = password {
                    out.push_str(&element("password", p));
                }
                attrs(&mut out, a);
            }
            Request::AddAccountAlias { id, alias } => {
                out.push_str(&element("id", id));
                out.push_str(&element("alias", alias));
            }
            Request::ModifyAccount { id, attrs: a } => {
                out.push_str(&element("id", id));
                attrs(&mut out, a);
            }
            Request::CreateDistributionList { name, attrs: a } => {
                out.push_str(&element("name", name));
                attrs(&mut out, a);
            }
            Request::AddDistributionListMember { id, members } => {
                out.push_str(&element("id", id));
                for m in members {
                    out.push_str(&element("dlm", m));
                }
            }
        }
        out.push_str(&format!("</{}>", self.name()));
        out
    }
}

fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

fn element(name: &str, text: &str) -> String {
    format!("<{name}>{}</{name}>", esc(text))
}

/// A SOAP 1.2 envelope around `body`, with the auth token in Carbonio's context header.
pub fn envelope(token: Option<&str>, body: &str) -> String {
    let header = match token {
        Some(t) => format!(
            "<soap:Header><context xmlns=\"urn:zimbra\"><authToken>{}</authToken></context></soap:Header>",
            esc(t)
        ),
        None => "<soap:Header><context xmlns=\"urn:zimbra\"/></soap:Header>".to_string(),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"{SOAP_NS}\">{header}<soap:Body>{body}</soap:Body></soap:Envelope>"
    )
}

/// `AuthRequest` for an admin account by name.
pub fn auth_request(user: &str, password: &str) -> String {
    format!(
        "<AuthRequest xmlns=\"urn:zimbraAdmin\"><account by=\"name\">{}</account>{}</AuthRequest>",
        esc(user),
        element("password", password)
    )
}

/// An XML element, read by local name.
#[derive(Debug, Default, Clone)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads an XML document into a tree of elements by local name (namespaces and prefixes are
/// dropped: SOAP answers are read by where their elements sit).
pub fn parse(xml: &str) -> Result<Element, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Element> = vec![Element::default()];
    let open = |e: &quick_xml::events::BytesStart<'_>| -> Result<Element, String> {
        let mut el = Element {
            name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
            ..Element::default()
        };
        for a in e.attributes() {
            let a = a.map_err(|e| e.to_string())?;
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| e.to_string())?
                .into_owned();
            el.attrs.push((
                String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned(),
                value,
            ));
        }
        Ok(el)
    };
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                if stack.len() > 64 {
                    return Err("elements nested too deep".into());
                }
                stack.push(open(&e)?);
            }
            Event::Empty(e) => {
                let el = open(&e)?;
                if let Some(top) = stack.last_mut() {
                    top.children.push(el);
                }
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| e.to_string())?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Event::CData(t) => {
                let text = t.decode().map_err(|e| e.to_string())?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                let c = crate::xml_text::reference(&r)?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c);
                }
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err("an end tag without a start".into());
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Err("an end tag without a start".into()),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut root = stack.pop().ok_or("no document")?;
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    root.children
        .pop()
        .filter(|_| root.children.is_empty())
        .ok_or_else(|| "not one root element".to_string())
}

/// The body's one element of a SOAP answer, or its fault.
fn answer_body(request: &'static str, xml: &str) -> Result<Element, SoapError> {
    let bad = |message: String| SoapError::Answer { request, message };
    let root = parse(xml).map_err(bad)?;
    if root.name != "Envelope" {
        return Err(bad(format!(
            "its root is `{}`, not a SOAP Envelope",
            root.name
        )));
    }
    let body = root
        .child("Body")
        .ok_or_else(|| bad("the envelope has no Body".into()))?;
    let first = body
        .children
        .first()
        .ok_or_else(|| bad("the Body is empty".into()))?;
    if first.name == "Fault" {
        return Err(fault(request, first));
    }
    Ok(first.clone())
}

/// A SOAP 1.2 fault (`Code/Value`, `Reason/Text`, `Detail/Error/Code` in `urn:zimbra`); a SOAP
/// 1.1 one (`faultcode`, `faultstring`) is read too.
fn fault(request: &'static str, f: &Element) -> SoapError {
    let text = |path: &[&str]| -> Option<String> {
        let mut el = f;
        for p in path {
            el = el.child(p)?;
        }
        Some(el.text.trim().to_string()).filter(|t| !t.is_empty())
    };
    let code = text(&["Detail", "Error", "Code"])
        .or_else(|| text(&["detail", "Error", "Code"]))
        .or_else(|| text(&["Code", "Value"]))
        .or_else(|| text(&["faultcode"]))
        .unwrap_or_else(|| "(no code)".into());
    let reason = text(&["Reason", "Text"])
        .or_else(|| text(&["faultstring"]))
        .unwrap_or_default();
    SoapError::Fault {
        request,
        code,
        reason,
    }
}

/// The auth token; shown nowhere.
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// A logged-in admin session.
pub struct SoapClient {
    client: reqwest::Client,
    url: String,
    token: Token,
    timeout: Duration,
}

impl SoapClient {
    /// Connects and authenticates (`AuthRequest`): a wrong password or an unreachable server
    /// fails here, before anything is written.
    pub async fn login(settings: &SoapSettings) -> Result<Self, SoapError> {
        let url = settings.url.clone();
        let setup = |message: String| SoapError::Setup {
            url: url.clone(),
            message,
        };
        let tls = crate::tls::client_config(settings.ca_file.as_deref(), settings.insecure)
            .map_err(|e| setup(e.to_string()))?;
        let timeout = settings.timeout.max(Duration::from_millis(1));
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(rustls::ClientConfig::clone(&tls))
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .timeout(timeout.saturating_mul(2))
            .build()
            .map_err(|e| setup(chain(&e)))?;
        let password = settings
            .password
            .resolve()
            .map_err(|e| SoapError::Secret(e.to_string()))?;
        let mut session = SoapClient {
            client,
            url,
            token: Token(String::new()),
            timeout,
        };
        let answer = session
            .send(
                "AuthRequest",
                envelope(None, &auth_request(&settings.user, &password)),
            )
            .await?;
        let token = answer
            .child("authToken")
            .map(|t| t.text.trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| SoapError::Answer {
                request: "AuthRequest",
                message: "the AuthResponse holds no authToken".into(),
            })?;
        session.token = Token(token);
        Ok(session)
    }

    /// Sends one write request; the response element on success.
    pub async fn call(&self, request: &Request) -> Result<Element, SoapError> {
        self.send(
            request.name(),
            envelope(Some(&self.token.0), &request.to_xml()),
        )
        .await
    }

    async fn send(&self, request: &'static str, body: String) -> Result<Element, SoapError> {
        let transport = |message: String| SoapError::Transport {
            request,
            url: self.url.clone(),
            message,
        };
        let secs = self.timeout.as_secs_f64();
        let sort = |e: reqwest::Error| {
            if e.is_timeout() {
                transport(format!(
                    "no answer in time ({secs} s to connect and for each read: the `timeout:` setting)"
                ))
            } else {
                transport(chain(&e))
            }
        };
        let mut resp = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/soap+xml; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(sort)?;
        let status = resp.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(sort)? {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(transport(format!(
                    "the answer is larger than the {} MiB accepted",
                    MAX_BODY >> 20
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&bytes);
        match answer_body(request, &text) {
            Ok(el) if status.is_success() => Ok(el),
            Ok(_) => Err(transport(format!("HTTP status {status}"))),
            // A fault is what a 500 carries; anything else unreadable is the status's doing.
            Err(e @ SoapError::Fault { .. }) => Err(e),
            Err(_) if !status.is_success() => Err(transport(format!("HTTP status {status}"))),
            Err(e) => Err(e),
        }
    }
}

/// The error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_is_read_with_its_code_and_reason() {
        let xml = format!(
            "<soap:Envelope xmlns:soap=\"{SOAP_NS}\"><soap:Body><soap:Fault><soap:Code><soap:Value>soap:Sender</soap:Value></soap:Code><soap:Reason><soap:Text>email address already exists: a@b.c</soap:Text></soap:Reason><soap:Detail><Error xmlns=\"urn:zimbra\"><Code>account.ACCOUNT_EXISTS</Code></Error></soap:Detail></soap:Fault></soap:Body></soap:Envelope>"
        );
        let e = answer_body("CreateAccountRequest", &xml).unwrap_err();
        assert_eq!(e.fault_code(), Some("account.ACCOUNT_EXISTS"));
        assert_eq!(
            e.to_string(),
            "CreateAccountRequest: fault account.ACCOUNT_EXISTS: email address already exists: a@b.c"
        );
    }

    #[test]
    fn values_are_escaped_and_the_password_stays_out_of_debug() {
        let r = Request::CreateAccount {
            name: "a@b.c".into(),
            password: Some("p<&>".into()),
            attrs: vec![("cn".into(), "A & B".into())],
        };
        assert_eq!(
            r.to_xml(),
            "<CreateAccountRequest xmlns=\"urn:zimbraAdmin\"><name>a@b.c</name><password>p&lt;&amp;&gt;</password><a n=\"cn\">A &amp; B</a></CreateAccountRequest>"
        );
        assert_eq!(format!("{r:?}"), "CreateAccountRequest");
        let back = parse(&r.to_xml()).unwrap();
        assert_eq!(back.child("password").unwrap().text, "p<&>");
    }
}
