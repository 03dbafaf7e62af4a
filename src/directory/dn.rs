//! Distinguished names (RFC 4514): parsing, escaping, case-insensitive comparison, and the Domino
//! renderings (abbreviated `John Smith/Sales/Acme`) that matching needs.
//!
//! A `Dn` is parsed once, at the edge, and is then compared through a normalised key: attribute
//! types and values fold case and insignificant spaces, so `CN=John  Smith,OU=Sales` equals
//! `cn=john smith, ou=sales`. DNs order hierarchically (a parent sorts before its children), so
//! sorted output reads top-down. This module must not know about directory flavors or matching.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use smallvec::SmallVec;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::attr::{AttrName, is_type_char};

/// One `type=value` pair of an RDN.
#[derive(Clone, Debug)]
pub struct Ava {
    pub attr: AttrName,
    pub value: String,
}

/// A relative distinguished name: one or more AVAs joined by `+`.
#[derive(Clone, Debug)]
pub struct Rdn(pub Vec<Ava>);

impl Rdn {
    /// The value of the first AVA of type `attr`.
    pub fn value_of(&self, attr: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|a| a.attr.is(attr))
            .map(|a| a.value.as_str())
    }
    /// The value of the first AVA, whatever its type (`John Smith` for `CN=John Smith`).
    pub fn first_value(&self) -> &str {
        self.0.first().map(|a| a.value.as_str()).unwrap_or("")
    }
}

/// A distinguished name, e.g. `CN=John Smith,OU=Sales,O=Acme`.
///
/// Stored as one shared string only, the canonical text followed by the normalised key, because
/// snapshots hold hundreds of thousands of DNs and plans copy each several times: a copy is a
/// reference count, not two allocations. RDNs are parsed again on demand (the text is
/// canonical, so that parse cannot fail).
#[derive(Clone)]
pub struct Dn {
    /// Canonical RFC 4514 text (as `Display` shows it), then the normalised RDNs, root first,
    /// joined by `,` (the identity used for Eq, Hash and Ord).
    both: Arc<str>,
    /// Where the key starts in `both`.
    split: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnError {
    #[error("`{dn}`: RDN {index} has no `=` (expected `type=value`, e.g. `CN=John Smith`)")]
    MissingEquals { dn: String, index: usize },
    #[error("`{dn}`: invalid attribute type `{attr}` in RDN {index}")]
    BadType {
        dn: String,
        index: usize,
        attr: String,
    },
    #[error("`{dn}`: RDN {index} is empty")]
    EmptyRdn { dn: String, index: usize },
    #[error(
        "`{dn}`: bad escape `{escape}` (use `\\\\` before one of `,+\"\\<>;=# ` or two hex digits)"
    )]
    BadEscape { dn: String, escape: String },
    #[error("`{dn}`: escaped bytes are not valid UTF-8")]
    BadUtf8 { dn: String },
    #[error("`{dn}`: unterminated quoted value")]
    UnterminatedQuote { dn: String },
}

impl Dn {
    fn new(mut text: String, key: &str) -> Self {
        let split = text.len();
        text.push_str(key);
        Dn {
            both: text.into(),
            split,
        }
    }

    /// Canonical RFC 4514 text.
    pub fn text(&self) -> &str {
        &self.both[..self.split]
    }

    /// The empty DN (the root DSE).
    pub fn root() -> Self {
        Dn::new(String::new(), "")
    }

    /// Parses an RFC 4514 string (also accepting RFC 1779's `;` separators, quoted values and
    /// spaces around separators, which real exports contain).
    pub fn parse(s: &str) -> Result<Self, DnError> {
        match parse_plain(s) {
            Some(dn) => Ok(dn),
            None => Ok(Self::from_rdns(parse_rdns(s)?)),
        }
    }

    fn from_rdns(rdns: Vec<Rdn>) -> Self {
        let mut key = String::new();
        for (i, rdn) in rdns.iter().rev().enumerate() {
            if i > 0 {
                key.push(',');
            }
            push_normalised_rdn(&mut key, rdn);
        }
        Dn::new(render(&rdns), &key)
    }

    /// RDNs, leaf first (as written).
    pub fn rdns(&self) -> Vec<Rdn> {
        parse_rdns(self.text()).unwrap_or_default()
    }

    pub fn is_root(&self) -> bool {
        self.text().is_empty()
    }

    /// The leaf RDN.
    pub fn rdn(&self) -> Option<Rdn> {
        let first = split_unescaped(self.text(), &[','])
            .ok()?
            .into_iter()
            .next()?;
        parse_rdns(first).ok()?.into_iter().next()
    }

    /// `self.rdn()?.value_of(attr)`: the value of the leaf RDN's first AVA of type `attr`
    /// (`John Smith` of `CN=John Smith,O=Acme` for `cn`). Indexing asks this of every entry: a
    /// leaf of one AVA with nothing escaped is read in place, without parsing the DN.
    pub fn leaf_value_of(&self, attr: &str) -> Option<std::borrow::Cow<'_, str>> {
        if let Some(leaf) = self.plain_leaf() {
            let (ty, value) = leaf?;
            return ty
                .eq_ignore_ascii_case(attr)
                .then_some(std::borrow::Cow::Borrowed(value));
        }
        let rdn = self.rdn()?;
        rdn.value_of(attr)
            .map(|v| std::borrow::Cow::Owned(v.to_string()))
    }

    /// The leaf RDN's type and value read in place, when it is one AVA with nothing escaped
    /// (`Some(None)` for the root); `None` when it must be parsed.
    fn plain_leaf(&self) -> Option<Option<(&str, &str)>> {
        let text = self.text();
        let leaf = &text[..text.find(',').unwrap_or(text.len())];
        (!leaf.contains(['\\', '+', '"'])).then(|| leaf.split_once('='))
    }

    /// The value of the leaf RDN's first AVA (`John Smith` for `CN=John Smith,O=Acme`).
    pub fn rdn_value(&self) -> Option<String> {
        if let Some(leaf) = self.plain_leaf() {
            return leaf.map(|(_, value)| value.to_string());
        }
        self.rdn().map(|r| r.first_value().to_string())
    }

    /// The DN one level up; the root's parent is the root.
    pub fn parent(&self) -> Dn {
        let rdns = self.rdns();
        if rdns.is_empty() {
            return Dn::root();
        }
        Self::from_rdns(rdns[1..].to_vec())
    }

    /// A child of this DN: `CN=<value>,<self>` for `attr = "CN"`.
    pub fn child(&self, attr: &str, value: &str) -> Dn {
        let rdn = Rdn(vec![Ava {
            attr: AttrName::new_unchecked(attr),
            value: value.to_string(),
        }]);
        let text = if self.text().is_empty() {
            render(std::slice::from_ref(&rdn))
        } else {
            format!("{},{}", render(std::slice::from_ref(&rdn)), self.text())
        };
        let key = if self.key().is_empty() {
            normalise_rdn(&rdn)
        } else {
            format!("{},{}", self.key(), normalise_rdn(&rdn))
        };
        Dn::new(text, &key)
    }

    /// True when `self` equals `base` or lies below it.
    pub fn is_within(&self, base: &Dn) -> bool {
        let (key, base) = (self.key(), base.key());
        if base.is_empty() {
            return true;
        }
        key.len() >= base.len()
            && key.starts_with(base)
            && (key.len() == base.len() || key.as_bytes()[base.len()] == b',')
    }

    /// Domino's abbreviated form: the RDN values leaf first, joined by `/`
    /// (`CN=John Smith,OU=Sales,O=Acme` gives `John Smith/Sales/Acme`).
    pub fn abbreviated(&self) -> String {
        // Every person's Notes name is made here: a DN with nothing escaped and one AVA per
        // RDN is read in place, as `plain_leaf` reads a leaf.
        let text = self.text();
        if !text.contains(['\\', '+', '"']) {
            let values: Option<Vec<&str>> = text
                .split(',')
                .filter(|r| !r.is_empty())
                .map(|r| r.split_once('=').map(|(_, v)| v))
                .collect();
            if let Some(values) = values {
                return values.join("/");
            }
        }
        let rdns = self.rdns();
        let parts: Vec<&str> = rdns.iter().map(|r| r.first_value()).collect();
        parts.join("/")
    }

    /// The normalised identity (lower-case, root first); stable across runs.
    pub fn key(&self) -> &str {
        &self.both[self.split..]
    }
}

/// `Dn::parse` of the DNs servers almost always send: `type=value` RDNs joined by `,`, with
/// nothing to unescape, trim or quote. The text and the key are built in one pass, without
/// RDNs in between (every entry read has a DN, every group a DN per member). `None` leaves
/// anything else, errors included, to the full parser.
fn parse_plain(s: &str) -> Option<Dn> {
    if s.is_empty()
        || s.bytes()
            .any(|b| matches!(b, b'\\' | b'"' | b'+' | b';' | b'<' | b'>' | b'#' | 0))
    {
        return None;
    }
    let mut avas: SmallVec<[(&str, &str); 8]> = SmallVec::new();
    for rdn in s.split(',') {
        let (ty, value) = rdn.split_once('=')?;
        if value.is_empty()
            || value.starts_with(char::is_whitespace)
            || value.ends_with(char::is_whitespace)
            || !is_plain_type(ty)
        {
            return None;
        }
        avas.push((ty, value));
    }
    let mut both = String::with_capacity(2 * s.len() + 8);
    for (i, (attr, value)) in avas.iter().enumerate() {
        if i > 0 {
            both.push(',');
        }
        both.push_str(attr);
        both.push('=');
        both.push_str(value);
    }
    let split = both.len();
    for (i, (attr, value)) in avas.iter().rev().enumerate() {
        if i > 0 {
            both.push(',');
        }
        // An attribute type folds as `AttrName` folds it: ASCII lower case.
        both.extend(attr.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        both.push('=');
        push_normalised_value(&mut both, value);
    }
    Some(Dn {
        both: both.into(),
        split,
    })
}

/// Parses the RDNs of a DN string, leaf first.
fn parse_rdns(s: &str) -> Result<Vec<Rdn>, DnError> {
    // Trailing spaces are left to the value parser: an escaped one (`\ `) is significant.
    let trimmed = s.trim_start();
    if trimmed.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut rdns = Vec::new();
    for (index, rdn_text) in split_unescaped(trimmed, &[',', ';'])
        .map_err(|_| DnError::UnterminatedQuote { dn: s.into() })?
        .into_iter()
        .enumerate()
    {
        let index = index + 1;
        let mut avas = Vec::new();
        for ava_text in split_unescaped(rdn_text, &['+'])
            .map_err(|_| DnError::UnterminatedQuote { dn: s.into() })?
        {
            // Only leading spaces go here: a trailing `\ ` is an escaped, significant space.
            let ava_text = ava_text.trim_start();
            if ava_text.trim().is_empty() {
                return Err(DnError::EmptyRdn {
                    dn: s.into(),
                    index,
                });
            }
            let eq = ava_text.find('=').ok_or(DnError::MissingEquals {
                dn: s.into(),
                index,
            })?;
            let (ty, raw) = (ava_text[..eq].trim(), &ava_text[eq + 1..]);
            let attr = AttrName::new(ty).map_err(|_| DnError::BadType {
                dn: s.into(),
                index,
                attr: ty.into(),
            })?;
            let value = unescape_value(raw, s)?;
            avas.push(Ava { attr, value });
        }
        rdns.push(Rdn(avas));
    }
    Ok(rdns)
}

/// Splits at unescaped separators, outside double quotes. Parts are kept inline (DNs are read
/// by the hundred thousand, and few have more than eight RDNs).
fn split_unescaped<'a>(s: &'a str, seps: &[char]) -> Result<SmallVec<[&'a str; 8]>, ()> {
    let mut parts = SmallVec::new();
    let mut start = 0;
    let mut escaped = false;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            c if !quoted && seps.contains(&c) => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if quoted {
        return Err(());
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn unescape_value(raw: &str, dn: &str) -> Result<String, DnError> {
    // Spaces around separators are not part of the value unless escaped.
    let mut raw = raw.trim_start();
    if raw.len() >= 2 && raw.starts_with('"') && raw.trim_end().ends_with('"') {
        let inner = raw.trim_end();
        raw = &inner[1..inner.len() - 1];
        return unescape_body(raw, dn, false);
    }
    unescape_body(raw, dn, true)
}

fn unescape_body(raw: &str, dn: &str, trim_end: bool) -> Result<String, DnError> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let bytes = raw.as_bytes();
    let mut i = 0;
    // Length of `out` that must survive trailing-space trimming (an escaped space counts).
    let mut keep = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' {
            let next = bytes.get(i + 1).copied();
            match next {
                Some(h1) if h1.is_ascii_hexdigit() => {
                    let h2 = bytes
                        .get(i + 2)
                        .copied()
                        .filter(u8::is_ascii_hexdigit)
                        .ok_or_else(|| DnError::BadEscape {
                            dn: dn.into(),
                            // Whole characters: the one after the hex digit may be any.
                            escape: raw[i..].chars().take(3).collect(),
                        })?;
                    let hex = [h1, h2];
                    let text = std::str::from_utf8(&hex).unwrap_or("00");
                    out.push(u8::from_str_radix(text, 16).unwrap_or(0));
                    i += 3;
                }
                Some(c) if b",+\"\\<>;=# ".contains(&c) => {
                    out.push(c);
                    i += 2;
                }
                _ => {
                    let end = raw[i..]
                        .char_indices()
                        .nth(2)
                        .map(|(j, _)| i + j)
                        .unwrap_or(raw.len());
                    return Err(DnError::BadEscape {
                        dn: dn.into(),
                        escape: raw[i..end].to_string(),
                    });
                }
            }
            keep = out.len();
        } else {
            out.push(b);
            if b != b' ' {
                keep = out.len();
            }
            i += 1;
        }
    }
    if trim_end {
        out.truncate(keep);
    }
    String::from_utf8(out).map_err(|_| DnError::BadUtf8 { dn: dn.into() })
}

/// Escapes a value for the string form of a DN (RFC 4514 section 2.4).
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// An attribute type `AttrName::new` accepts, without options (`;` is not plain in a DN): read
/// here without interning it, as every entry's DN comes through `parse_plain`.
fn is_plain_type(ty: &str) -> bool {
    let b = ty.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric) && b.iter().all(|&c| is_type_char(c))
}

/// Appends the normalised form of a value: case folded, runs of white space as one space,
/// escaped as in `escape_value`. Written out by hand because it runs for every DN of every
/// snapshot; an allocation per value showed up in profiles.
fn push_normalised_value(out: &mut String, v: &str) {
    if v.is_ascii() {
        push_normalised_ascii(out, v);
    } else {
        push_normalised_chars(out, v);
    }
}

/// `push_normalised_chars` for ASCII text (nearly every DN), a byte at a time.
fn push_normalised_ascii(out: &mut String, v: &str) {
    let start = out.len();
    let mut space = false;
    for b in v.bytes() {
        // `char::is_whitespace` in ASCII: tab, line feed, vertical tab, form feed, carriage
        // return and space.
        if matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ') {
            space = out.len() > start;
            continue;
        }
        if std::mem::take(&mut space) {
            out.push(' ');
        }
        match b.to_ascii_lowercase() {
            l @ (b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\') => {
                out.push('\\');
                out.push(char::from(l));
            }
            b'#' if out.len() == start => out.push_str("\\#"),
            0 => out.push_str("\\00"),
            l => out.push(char::from(l)),
        }
    }
}

fn push_normalised_chars(out: &mut String, v: &str) {
    let start = out.len();
    for (i, word) in v.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        for c in word.chars() {
            for l in c.to_lowercase() {
                match l {
                    '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                        out.push('\\');
                        out.push(l);
                    }
                    '#' if out.len() == start => out.push_str("\\#"),
                    '\0' => out.push_str("\\00"),
                    l => out.push(l),
                }
            }
        }
    }
}

fn push_normalised_ava(out: &mut String, ava: &Ava) {
    out.push_str(ava.attr.folded());
    out.push('=');
    push_normalised_value(out, &ava.value);
}

fn push_normalised_rdn(out: &mut String, rdn: &Rdn) {
    if let [ava] = rdn.0.as_slice() {
        push_normalised_ava(out, ava);
        return;
    }
    let mut avas: Vec<String> = rdn
        .0
        .iter()
        .map(|a| {
            let mut s = String::new();
            push_normalised_ava(&mut s, a);
            s
        })
        .collect();
    avas.sort();
    out.push_str(&avas.join("+"));
}

fn normalise_rdn(rdn: &Rdn) -> String {
    let mut s = String::new();
    push_normalised_rdn(&mut s, rdn);
    s
}

impl PartialEq for Dn {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.both, &other.both) || self.key() == other.key()
    }
}
impl Eq for Dn {}
impl Hash for Dn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state)
    }
}
impl PartialOrd for Dn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Dn {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(other.key())
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// The canonical string form of RDNs (RFC 4514 escaping, no spaces around separators).
fn render(rdns: &[Rdn]) -> String {
    let mut out = String::new();
    for (i, rdn) in rdns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, ava) in rdn.0.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            out.push_str(ava.attr.as_str());
            out.push('=');
            out.push_str(&escape_value(&ava.value));
        }
    }
    out
}
impl fmt::Debug for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dn({self})")
    }
}
impl std::str::FromStr for Dn {
    type Err = DnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dn::parse(s)
    }
}
impl Serialize for Dn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for Dn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Dn::parse(&s).map_err(serde::de::Error::custom)
    }
}
impl schemars::JsonSchema for Dn {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Dn".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A distinguished name (RFC 4514), e.g. `CN=John Smith,OU=Sales,O=Acme`."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repeatable stream of numbers below `n` (a linear congruential generator): random
    /// enough to find the strings a shortcut gets wrong, the same on every run.
    fn numbers(mut seed: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        }
    }

    #[test]
    fn ascii_values_normalise_as_chars_do() {
        let chars = b"aZ09 -.=#\\\",+;<>\t\n\x0b\x0c\r\0\x1f\x7f";
        let mut next = numbers(0xa5c11);
        for _ in 0..100_000 {
            let v: String = (0..next(9))
                .map(|_| char::from(chars[next(chars.len())]))
                .collect();
            for prefix in ["", "cn="] {
                let (mut fast, mut slow) = (prefix.to_string(), prefix.to_string());
                push_normalised_ascii(&mut fast, &v);
                push_normalised_chars(&mut slow, &v);
                assert_eq!(fast, slow, "{v:?}");
            }
        }
    }

    #[test]
    fn plain_dns_parse_as_the_full_parser_does() {
        // Random strings over the characters DNs are made of, the tricky ones included: any
        // string the shortcut takes must come out exactly as the full parser makes it.
        let value_chars: Vec<char> = "ab Z09-.=éß#\\\",+;<>\t\u{a0}".chars().collect();
        let types = [
            "CN", "cn", "O", "ou", "2.5.4.3", " CN", "C N", "", "-cn", "c_n", "x-Y.1",
        ];
        let separators = [",", ",", ",", ", ", ";"];
        let mut next = numbers(0x5eed);
        let mut taken = 0;
        for _ in 0..100_000 {
            let mut text = String::new();
            for r in 0..next(4) + 1 {
                if r > 0 {
                    text.push_str(separators[next(separators.len())]);
                }
                text.push_str(types[next(types.len())]);
                text.push('=');
                for _ in 0..next(7) {
                    // Mostly letters, now and then one of the characters that need care.
                    let c = if next(4) == 0 {
                        next(value_chars.len())
                    } else {
                        next(4)
                    };
                    text.push(value_chars[c]);
                }
            }
            let Some(fast) = parse_plain(&text) else {
                continue;
            };
            taken += 1;
            let full = Dn::from_rdns(parse_rdns(&text).unwrap_or_else(|e| panic!("{text:?}: {e}")));
            assert_eq!(
                (fast.text(), fast.key()),
                (full.text(), full.key()),
                "{text:?}"
            );
        }
        assert!(taken > 1_000, "only {taken} strings took the shortcut");
        for text in [
            "CN=John Smith,OU=Sales,O=Acme",
            "cn=JOHN  SMITH,o=acme",
            "CN=a=b,DC=x",
            "CN=Jöhn,DC=x",
            "2.5.4.3=x,DC=y",
        ] {
            let fast = parse_plain(text).unwrap_or_else(|| panic!("{text} is plain"));
            let full = Dn::from_rdns(parse_rdns(text).unwrap());
            assert_eq!(
                (fast.text(), fast.key()),
                (full.text(), full.key()),
                "{text}"
            );
        }
        for text in [
            "",
            " CN=x",
            "CN=x ",
            "CN= x",
            "CN=x, O=y",
            "CN=a+UID=b",
            "CN=\\,",
            "CN",
        ] {
            assert!(
                parse_plain(text).is_none(),
                "{text:?} is left to the full parser"
            );
        }
    }

    #[test]
    fn leaf_values_read_in_place_are_those_of_the_parsed_rdn() {
        for text in [
            "CN=John Smith,OU=Sales,O=Acme",
            "cn=john smith,o=acme",
            "CN=Smith\\, John,O=Acme",
            "CN=x+UID=jsmith,O=Acme",
            "UID=jsmith+CN=John,O=Acme",
            "OU=Sales,O=Acme",
            "CN=\\ lead,O=Acme",
            "CN=#hash,O=Acme",
            "CN=a\\+b,O=Acme",
            "CN=,O=Acme",
            "2.5.4.3=John,O=Acme",
            "CN=Jöhn Smith",
            "",
        ] {
            let d = Dn::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            for attr in ["cn", "CN", "uid", "ou"] {
                let expected = d.rdn().and_then(|r| r.value_of(attr).map(str::to_string));
                assert_eq!(
                    d.leaf_value_of(attr).map(|v| v.into_owned()),
                    expected,
                    "{text} / {attr}"
                );
            }
            assert_eq!(
                d.rdn_value(),
                d.rdn().map(|r| r.first_value().to_string()),
                "{text}"
            );
            let parsed: Vec<String> = d.rdns().iter().map(|r| r.first_value().into()).collect();
            assert_eq!(d.abbreviated(), parsed.join("/"), "{text}");
        }
    }

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    #[test]
    fn compares_without_case_or_extra_spaces() {
        assert_eq!(
            dn("CN=John  Smith,OU=Sales,O=Acme"),
            dn("cn=john smith, ou=SALES ,o=acme")
        );
        assert_ne!(
            dn("CN=John Smith,OU=Sales,O=Acme"),
            dn("CN=John Smith,OU=East,O=Acme")
        );
    }

    #[test]
    fn escapes_round_trip() {
        let d = dn(r"CN=Smith\, John,OU=Sales\+Marketing,O=Acme");
        assert_eq!(d.rdn().unwrap().first_value(), "Smith, John");
        assert_eq!(d.to_string(), r"CN=Smith\, John,OU=Sales\+Marketing,O=Acme");
        assert_eq!(dn(&d.to_string()), d);
    }

    #[test]
    fn hex_escapes_decode_utf8() {
        let d = dn(r"CN=J\C3\BCrgen M\C3\BCller,O=Acme");
        assert_eq!(d.rdn().unwrap().first_value(), "Jürgen Müller");
        assert_eq!(d, dn("cn=jürgen müller,o=acme"));
        assert_eq!(dn("CN=ÜBER,O=X"), dn("cn=über,o=x"));
    }

    #[test]
    fn multi_valued_rdns_compare_in_any_order() {
        assert_eq!(dn("CN=A+UID=a,O=X"), dn("uid=a+cn=a,o=x"));
    }

    #[test]
    fn hierarchy() {
        let base = dn("OU=Sales,O=Acme");
        assert!(dn("CN=John,OU=Sales,O=Acme").is_within(&base));
        assert!(base.is_within(&base));
        assert!(!dn("CN=John,OU=SalesX,O=Acme").is_within(&base));
        assert!(dn("CN=x,O=Acme").is_within(&Dn::root()));
        assert_eq!(dn("CN=John,OU=Sales,O=Acme").parent(), base);
        assert_eq!(
            base.child("CN", "Jane, Doe").to_string(),
            r"CN=Jane\, Doe,OU=Sales,O=Acme"
        );
        assert!(
            base < dn("CN=John,OU=Sales,O=Acme"),
            "parents sort before children"
        );
    }

    #[test]
    fn abbreviated_domino_names() {
        assert_eq!(
            dn("CN=John B Goode,OU=Sales,OU=East,O=Acme,C=US").abbreviated(),
            "John B Goode/Sales/East/Acme/US"
        );
    }

    #[test]
    fn rejects_malformed() {
        assert!(matches!(
            Dn::parse("CN=John,Sales"),
            Err(DnError::MissingEquals { index: 2, .. })
        ));
        assert!(matches!(
            Dn::parse("CN=John,,O=x"),
            Err(DnError::EmptyRdn { .. })
        ));
        assert!(matches!(
            Dn::parse(r"CN=Jo\hn"),
            Err(DnError::BadEscape { .. })
        ));
        assert!(matches!(Dn::parse("C N=x"), Err(DnError::BadType { .. })));
        // A hex escape cut short by a letter of several bytes (found by fuzzing: it panicked).
        for dn in [r"CN=Müller\2ürgen,O=Acme", r"CN=a\2😀", r"CN=a\ü"] {
            match Dn::parse(dn) {
                Err(DnError::BadEscape { escape, .. }) => assert!(dn.contains(&escape), "{escape}"),
                other => panic!("{dn}: {other:?}"),
            }
        }
        assert!(matches!(
            Dn::parse(r#"CN="open"#),
            Err(DnError::UnterminatedQuote { .. })
        ));
    }

    #[test]
    fn spaces_and_quotes() {
        assert_eq!(dn(r"CN=\ lead,O=x").rdn().unwrap().first_value(), " lead");
        assert_eq!(dn(r"CN=trail\ ,O=x").rdn().unwrap().first_value(), "trail ");
        assert_eq!(
            dn(r#"CN="Smith, John",O=x"#).rdn().unwrap().first_value(),
            "Smith, John"
        );
        assert_eq!(dn("CN=a;O=x"), dn("CN=a,O=x"));
    }
}
