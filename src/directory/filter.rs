//! RFC 4515 search filters: parsed once, evaluated in memory against an `Entry`.
//!
//! Used for classification rules and wave selection, so planning never needs a server to apply a
//! filter. There is no schema here, so evaluation uses the rules that fit most directory
//! attributes:
//!
//! - text compares as caseIgnoreMatch: case-insensitive, with leading, trailing and repeated
//!   whitespace insignificant; binary values (not UTF-8, or holding control characters) compare
//!   as bytes;
//! - an equality assertion that is a DN matches a value naming the same DN (`Dn` equality), so
//!   `(member=cn=x,o=acme)` finds `CN=X, O=Acme`;
//! - `>=` and `<=` compare as integers when both sides are integers, else as folded text (which
//!   orders generalized times correctly);
//! - `~=` is the same as `=`;
//! - a filter attribute also matches its subtypes by option: `(cn=x)` looks in `cn;lang-de`;
//! - `(objectCategory=person)` matches the DN `CN=Person,CN=Schema,…` the way Active Directory
//!   does, by the class name in its RDN;
//! - extensible matches evaluate only the rules that need no schema or server: the equality
//!   rules (caseIgnoreMatch, caseIgnoreIA5Match, caseExactMatch, caseExactIA5Match,
//!   octetStringMatch, distinguishedNameMatch, integerMatch, by name or OID) and Active
//!   Directory's bitwise AND/OR (`1.2.840.113556.1.4.803`/`.804`); any other rule, such as
//!   LDAP_MATCHING_RULE_IN_CHAIN, evaluates to false.
//!
//! Absent attributes make every item false (so `(!(x=y))` is true for them). `(&)` and `(|)` are
//! RFC 4526's absolute true and false. This module must not do I/O.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::attr::{AttrName, Value};
use super::dn::Dn;
use super::entry::Entry;

/// A parsed filter. Its `Display` is the canonical RFC 4515 string, which parses back to an equal
/// filter. Equality is structural: attribute names ignore case, values compare as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `(&f1f2…)`; `(&)` is always true.
    And(Vec<Filter>),
    /// `(|f1f2…)`; `(|)` is always false.
    Or(Vec<Filter>),
    /// `(!f)`.
    Not(Box<Filter>),
    /// `(attr=value)`.
    Equality { attr: AttrName, value: Value },
    /// `(attr=initial*any1*any2*final)`; at least one `*`, so `initial`/`final` may be absent.
    Substrings {
        attr: AttrName,
        initial: Option<Value>,
        any: Vec<Value>,
        r#final: Option<Value>,
    },
    /// `(attr>=value)`.
    GreaterOrEqual { attr: AttrName, value: Value },
    /// `(attr<=value)`.
    LessOrEqual { attr: AttrName, value: Value },
    /// `(attr=*)`.
    Present { attr: AttrName },
    /// `(attr~=value)`.
    Approx { attr: AttrName, value: Value },
    /// `(attr:dn:rule:=value)`; `attr` or `rule` may be absent, but not both.
    Extensible {
        attr: Option<AttrName>,
        dn_attributes: bool,
        rule: Option<String>,
        value: Value,
    },
}

/// Why a filter string does not parse; `position` is a byte offset into the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {position})")]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

/// Deeper nesting than any real filter needs; the limit keeps recursion bounded on hostile input.
const MAX_DEPTH: usize = 100;

impl Filter {
    /// Parses an RFC 4515 filter. Also accepts a single item without parentheses
    /// (`objectClass=user`) and whitespace around and between parenthesised filters.
    pub fn parse(s: &str) -> Result<Self, FilterError> {
        let mut p = Parser {
            s,
            pos: 0,
            end: s.len(),
            depth: 0,
        };
        p.skip_ws();
        let filter = match p.peek() {
            None => return Err(p.error(0, "empty filter")),
            Some(b')') => {
                return Err(p.error(
                    p.pos,
                    "unbalanced parentheses: this `)` has no matching `(`",
                ));
            }
            Some(b'(') => {
                let f = p.filter()?;
                p.skip_ws();
                f
            }
            Some(_) => {
                // A bare item runs to the end of the input, whose trailing whitespace is layout.
                p.end = s.trim_end().len();
                p.item()?
            }
        };
        match p.peek() {
            None => Ok(filter),
            Some(b')') => Err(p.error(
                p.pos,
                "unbalanced parentheses: this `)` has no matching `(`",
            )),
            Some(_) => Err(p.error(p.pos, "trailing characters after the filter")),
        }
    }

    /// True when `entry` satisfies the filter (see the module documentation for the rules).
    pub fn matches(&self, entry: &Entry) -> bool {
        match self {
            Filter::And(filters) => filters.iter().all(|f| f.matches(entry)),
            Filter::Or(filters) => filters.iter().any(|f| f.matches(entry)),
            Filter::Not(filter) => !filter.matches(entry),
            Filter::Present { attr } => values_of(entry, attr).next().is_some(),
            Filter::Equality { attr, value } | Filter::Approx { attr, value } => {
                let mut assertion = Assertion::new(value.as_bytes());
                let by_category = attr.is("objectCategory");
                values_of(entry, attr).any(|v| {
                    let text = value_text(v);
                    assertion.equals_text(v.as_bytes(), text)
                        || (by_category && assertion.names_category(text))
                })
            }
            Filter::GreaterOrEqual { attr, value } => values_of(entry, attr)
                .any(|v| compare(v.as_bytes(), value.as_bytes()) != Ordering::Less),
            Filter::LessOrEqual { attr, value } => values_of(entry, attr)
                .any(|v| compare(v.as_bytes(), value.as_bytes()) != Ordering::Greater),
            Filter::Substrings {
                attr,
                initial,
                any,
                r#final,
            } => {
                let pattern = SubstringPattern::new(initial.as_ref(), any, r#final.as_ref());
                values_of(entry, attr).any(|v| pattern.matches(v.as_bytes()))
            }
            Filter::Extensible {
                attr,
                dn_attributes,
                rule,
                value,
            } => extensible_matches(entry, attr.as_ref(), *dn_attributes, rule.as_deref(), value),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    /// Where input ends for this parse (a bare item ignores trailing whitespace).
    end: usize,
    depth: usize,
}

fn is_attr_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b';')
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.peek_at(self.pos)
    }

    fn peek_at(&self, pos: usize) -> Option<u8> {
        if pos < self.end {
            self.s.as_bytes().get(pos).copied()
        } else {
            None
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn error(&self, position: usize, message: impl Into<String>) -> FilterError {
        FilterError {
            position,
            message: message.into(),
        }
    }

    fn unclosed(&self, open: usize) -> FilterError {
        self.error(
            self.pos,
            format!(
                "unbalanced parentheses: expected `)` to close the filter opened at byte {open}"
            ),
        )
    }

    /// `( filtercomp )`, with `self.pos` at the `(`.
    fn filter(&mut self) -> Result<Filter, FilterError> {
        let open = self.pos;
        self.pos += 1;
        self.skip_ws();
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                open,
                format!("filter nested too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        let filter = match self.peek() {
            None => return Err(self.unclosed(open)),
            Some(b')') => return Err(self.error(self.pos, "empty filter: `()` holds nothing")),
            Some(b'&') => {
                self.pos += 1;
                Filter::And(self.list(open, '&')?)
            }
            Some(b'|') => {
                self.pos += 1;
                Filter::Or(self.list(open, '|')?)
            }
            Some(b'!') => {
                self.pos += 1;
                self.skip_ws();
                match self.peek() {
                    Some(b'(') => {}
                    None => return Err(self.unclosed(open)),
                    Some(_) => {
                        return Err(self.error(
                            self.pos,
                            "`!` must be followed by a filter in parentheses, e.g. `(!(cn=x))`",
                        ));
                    }
                }
                let inner = self.filter()?;
                self.skip_ws();
                if self.peek().is_some_and(|b| b != b')') {
                    return Err(self.error(
                        self.pos,
                        format!(
                            "`!` takes exactly one filter: expected `)` to close the filter \
                             opened at byte {open}"
                        ),
                    ));
                }
                Filter::Not(Box::new(inner))
            }
            Some(_) => self.item()?,
        };
        if self.peek() != Some(b')') {
            return Err(self.unclosed(open));
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(filter)
    }

    /// The filters of `&` or `|`, up to (not including) the closing `)`.
    fn list(&mut self, open: usize, op: char) -> Result<Vec<Filter>, FilterError> {
        let mut filters = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'(') => filters.push(self.filter()?),
                Some(b')') => return Ok(filters),
                None => return Err(self.unclosed(open)),
                Some(_) => {
                    return Err(self.error(
                        self.pos,
                        format!("expected `(` to start the next filter inside `{op}`"),
                    ));
                }
            }
        }
    }

    /// `attr op value`, up to (not including) a `)` or the end of input.
    fn item(&mut self) -> Result<Filter, FilterError> {
        let start = self.pos;
        while self.peek().is_some_and(is_attr_byte) {
            self.pos += 1;
        }
        // Attribute bytes are ASCII, so both ends are char boundaries.
        let attr_text = self.s.get(start..self.pos).unwrap_or("");
        if attr_text.is_empty() {
            if self.peek() == Some(b':') {
                return self.extensible(None, start);
            }
            let message = match self.peek() {
                Some(op @ (b'&' | b'|' | b'!')) => format!(
                    "`{}` must be inside parentheses, e.g. `({}(a=b)(c=d))`",
                    char::from(op),
                    char::from(op)
                ),
                Some(b'=' | b'~' | b'>' | b'<') => {
                    "expected an attribute name before the operator".into()
                }
                _ => "expected an attribute name".into(),
            };
            return Err(self.error(start, message));
        }
        let attr = AttrName::new(attr_text).map_err(|e| self.error(start, e.to_string()))?;
        let op_pos = self.pos;
        match (self.peek(), self.peek_at(op_pos + 1)) {
            (Some(b':'), _) => self.extensible(Some(attr), start),
            (Some(b'='), _) => {
                self.pos += 1;
                let mut pieces = self.value(true)?;
                if pieces.len() == 1 {
                    let value = Value::bytes(pieces.pop().unwrap_or_default());
                    return Ok(Filter::Equality { attr, value });
                }
                if pieces.len() == 2 && pieces.iter().all(Vec::is_empty) {
                    return Ok(Filter::Present { attr });
                }
                let non_empty = |p: Vec<u8>| (!p.is_empty()).then(|| Value::bytes(p));
                let r#final = pieces.pop().and_then(non_empty);
                let mut rest = pieces.into_iter();
                let initial = rest.next().and_then(non_empty);
                let any = rest.map(Value::bytes).collect();
                Ok(Filter::Substrings {
                    attr,
                    initial,
                    any,
                    r#final,
                })
            }
            (Some(op @ (b'~' | b'>' | b'<')), Some(b'=')) => {
                self.pos += 2;
                let value = Value::bytes(self.value(false)?.pop().unwrap_or_default());
                Ok(match op {
                    b'~' => Filter::Approx { attr, value },
                    b'>' => Filter::GreaterOrEqual { attr, value },
                    _ => Filter::LessOrEqual { attr, value },
                })
            }
            (Some(b' ' | b'\t'), _) => Err(self.error(
                op_pos,
                format!("unexpected space after `{attr}`: write `{attr}=value` without spaces"),
            )),
            _ => Err(self.error(
                op_pos,
                format!("expected `=`, `~=`, `>=`, `<=` or `:=` after `{attr}`"),
            )),
        }
    }

    /// `[attr][:dn][:rule]:=value`, with `self.pos` at the first `:`.
    fn extensible(&mut self, attr: Option<AttrName>, start: usize) -> Result<Filter, FilterError> {
        let mut dn_attributes = false;
        let mut rule: Option<String> = None;
        loop {
            // At a `:`.
            self.pos += 1;
            if self.peek() == Some(b'=') {
                self.pos += 1;
                break;
            }
            let token_start = self.pos;
            while self
                .peek()
                .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
            {
                self.pos += 1;
            }
            let token = self.s.get(token_start..self.pos).unwrap_or("");
            if token.is_empty() {
                return Err(self.error(
                    token_start,
                    "expected `dn`, a matching rule or `=` after `:` (extensible match is \
                     `attr:dn:rule:=value`)",
                ));
            }
            if self.peek() != Some(b':') {
                return Err(self.error(
                    self.pos,
                    format!(
                        "expected `:` after `{token}` (extensible match is `attr:dn:rule:=value`)"
                    ),
                ));
            }
            if token.eq_ignore_ascii_case("dn") && !dn_attributes && rule.is_none() {
                dn_attributes = true;
            } else if rule.is_none() {
                if !is_oid(token) {
                    return Err(self.error(
                        token_start,
                        format!(
                            "bad matching rule `{token}`: expected a name such as \
                             `caseIgnoreMatch` or a numeric OID such as `2.5.13.2`"
                        ),
                    ));
                }
                rule = Some(token.to_string());
            } else {
                return Err(self.error(
                    token_start,
                    format!(
                        "unexpected `{token}`: an extensible match takes at most `:dn` and one \
                         matching rule, then `:=`"
                    ),
                ));
            }
        }
        if attr.is_none() && rule.is_none() {
            return Err(self.error(
                start,
                "an extensible match without an attribute needs a matching rule, e.g. \
                 `(:caseIgnoreMatch:=value)`",
            ));
        }
        let value = Value::bytes(self.value(false)?.pop().unwrap_or_default());
        Ok(Filter::Extensible {
            attr,
            dn_attributes,
            rule,
            value,
        })
    }

    /// An assertion value up to `)` or the end, unescaped. With `stars`, unescaped `*` split it
    /// into pieces (one piece when there is none); without, `*` is an error.
    fn value(&mut self, stars: bool) -> Result<Vec<Vec<u8>>, FilterError> {
        let mut pieces = Vec::new();
        let mut current = Vec::new();
        loop {
            match self.peek() {
                None | Some(b')') => break,
                Some(b'(') => {
                    return Err(self.error(
                        self.pos,
                        "unescaped `(` in a value: write `\\28` (and `\\29` for `)`)",
                    ));
                }
                Some(b'*') if stars => {
                    pieces.push(std::mem::take(&mut current));
                    self.pos += 1;
                }
                Some(b'*') => {
                    return Err(self.error(
                        self.pos,
                        "`*` is only allowed after `=`; write `\\2a` for a literal asterisk",
                    ));
                }
                Some(b'\\') => {
                    let escape = self.pos;
                    let hex = (self.peek_at(escape + 1).and_then(hex_value))
                        .zip(self.peek_at(escape + 2).and_then(hex_value));
                    if let Some((high, low)) = hex {
                        current.push((high << 4) | low);
                        self.pos += 3;
                    } else if let Some(c @ (b'*' | b'(' | b')' | b'\\')) = self.peek_at(escape + 1)
                    {
                        // RFC 1960's `\*` form, still written by older tools; unambiguous.
                        current.push(c);
                        self.pos += 2;
                    } else {
                        return Err(self.error(
                            escape,
                            "bad escape: `\\` must be followed by two hex digits, e.g. `\\2a` \
                             for `*` or `\\5c` for `\\`",
                        ));
                    }
                }
                Some(b) => {
                    current.push(b);
                    self.pos += 1;
                }
            }
        }
        pieces.push(current);
        Ok(pieces)
    }
}

/// RFC 4512 `oid`: a descriptor (`caseIgnoreMatch`) or a numeric OID (`2.5.13.2`).
fn is_oid(s: &str) -> bool {
    let descr = s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let numeric = s
        .split('.')
        .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    descr || (numeric && s.contains('.'))
}

// ---------------------------------------------------------------------------------------------
// Display
// ---------------------------------------------------------------------------------------------

/// Writes an assertion value with RFC 4515 escapes: the specials `*()\` and NUL always, control
/// characters for readability, and every byte of a value that is not UTF-8.
fn write_value(f: &mut fmt::Formatter<'_>, value: &Value) -> fmt::Result {
    match value.as_str() {
        Some(text) => {
            for c in text.chars() {
                if matches!(c, '*' | '(' | ')' | '\\') || c.is_control() {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        write!(f, "\\{b:02x}")?;
                    }
                } else {
                    write!(f, "{c}")?;
                }
            }
            Ok(())
        }
        None => value
            .as_bytes()
            .iter()
            .try_for_each(|b| write!(f, "\\{b:02x}")),
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let simple = |f: &mut fmt::Formatter<'_>, attr: &AttrName, op: &str, value: &Value| {
            write!(f, "({attr}{op}")?;
            write_value(f, value)?;
            f.write_str(")")
        };
        match self {
            Filter::And(filters) | Filter::Or(filters) => {
                f.write_str(if matches!(self, Filter::And(_)) {
                    "(&"
                } else {
                    "(|"
                })?;
                for filter in filters {
                    filter.fmt(f)?;
                }
                f.write_str(")")
            }
            Filter::Not(filter) => write!(f, "(!{filter})"),
            Filter::Equality { attr, value } => simple(f, attr, "=", value),
            Filter::Approx { attr, value } => simple(f, attr, "~=", value),
            Filter::GreaterOrEqual { attr, value } => simple(f, attr, ">=", value),
            Filter::LessOrEqual { attr, value } => simple(f, attr, "<=", value),
            Filter::Present { attr } => write!(f, "({attr}=*)"),
            Filter::Substrings {
                attr,
                initial,
                any,
                r#final,
            } => {
                write!(f, "({attr}=")?;
                if let Some(initial) = initial {
                    write_value(f, initial)?;
                }
                f.write_str("*")?;
                for piece in any {
                    write_value(f, piece)?;
                    f.write_str("*")?;
                }
                if let Some(last) = r#final {
                    write_value(f, last)?;
                }
                f.write_str(")")
            }
            Filter::Extensible {
                attr,
                dn_attributes,
                rule,
                value,
            } => {
                f.write_str("(")?;
                if let Some(attr) = attr {
                    write!(f, "{attr}")?;
                }
                if *dn_attributes {
                    f.write_str(":dn")?;
                }
                if let Some(rule) = rule {
                    write!(f, ":{rule}")?;
                }
                f.write_str(":=")?;
                write_value(f, value)?;
                f.write_str(")")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// The values of `attr` and of its subtypes by option (`cn` also finds `cn;lang-de`; `cn;x`
/// finds `cn;x` and `cn;x;y`).
fn values_of<'e>(entry: &'e Entry, attr: &'e AttrName) -> impl Iterator<Item = &'e Value> + 'e {
    let (base, options) = attr.folded_parts();
    let is_subtype = move |name: &AttrName| {
        let (name_base, name_options) = name.folded_parts();
        name_base == base
            && (options.is_empty()
                || options
                    .split(';')
                    .filter(|o| !o.is_empty())
                    .all(|o| name_options.split(';').any(|have| have == o)))
    };
    // Without options, every candidate name starts with the filter's name and so sorts in one
    // run from it: a range scan instead of a walk over all attributes.
    let run = options.is_empty().then(|| {
        entry
            .attrs
            .iter_from(attr)
            .take_while(move |(name, _)| name.folded().starts_with(base))
    });
    let all = (!options.is_empty()).then(|| entry.attrs.iter());
    run.into_iter()
        .flatten()
        .chain(all.into_iter().flatten())
        .filter(move |(name, _)| is_subtype(name))
        .flat_map(|(_, values)| values.iter())
}

/// A value's text for comparison, or `None` when it must compare as bytes.
fn value_text(v: &Value) -> Option<&str> {
    if v.is_binary() { None } else { v.as_str() }
}

/// `value_text` for bytes that are not a `Value` (the same line `Value::is_binary` draws).
fn as_text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|s| !s.chars().any(|c| c.is_control() && c != '\t'))
}

/// caseIgnoreMatch's view of a string: lower-case, trimmed, whitespace runs as one space.
fn folded_chars(s: &str) -> impl Iterator<Item = char> + '_ {
    let mut in_space = false;
    s.trim()
        .chars()
        .filter_map(move |c| {
            if c.is_whitespace() {
                (!std::mem::replace(&mut in_space, true)).then_some(' ')
            } else {
                in_space = false;
                Some(c)
            }
        })
        .flat_map(char::to_lowercase)
}

fn text_eq_ignore_case(a: &str, b: &str) -> bool {
    // Strings equal but for the case of ASCII letters fold to the same text.
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    // Most comparisons are short ASCII words (`objectClass=user` against each class of an
    // entry, for every entry): with no white space to trim or fold, they need no folding.
    let plain = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii() && !b.is_ascii_whitespace() && b != 0x0b)
    };
    if plain(a) && plain(b) {
        return false;
    }
    folded_chars(a).eq(folded_chars(b))
}

/// An equality assertion, with its DN form parsed at most once per evaluation.
struct Assertion<'a> {
    bytes: &'a [u8],
    text: Option<&'a str>,
    /// Whether the text has a `=`, and so may be a DN.
    may_be_dn: bool,
    dn: Option<Option<Dn>>,
}

impl<'a> Assertion<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let text = as_text(bytes);
        Assertion {
            bytes,
            text,
            may_be_dn: text.is_some_and(|t| t.contains('=')),
            dn: None,
        }
    }

    fn equals(&mut self, candidate: &[u8]) -> bool {
        self.equals_text(candidate, as_text(candidate))
    }

    /// `equals` for a candidate whose text (`as_text`) is known.
    fn equals_text(&mut self, bytes: &[u8], candidate: Option<&str>) -> bool {
        let (Some(text), Some(candidate)) = (self.text, candidate) else {
            return self.bytes == bytes;
        };
        if text_eq_ignore_case(text, candidate) {
            return true;
        }
        if !(self.may_be_dn && candidate.contains('=')) {
            return false;
        }
        let dn = self
            .dn
            .get_or_insert_with(|| Dn::parse(text).ok().filter(|d| !d.is_root()));
        dn.as_ref()
            .is_some_and(|dn| Dn::parse(candidate).is_ok_and(|c| c == *dn))
    }

    /// Active Directory resolves `(objectCategory=person)` to the class's DN; its RDN is the
    /// class's common name, which is the lDAPDisplayName with hyphens between the words
    /// (`Organizational-Person` for `organizationalPerson`).
    fn names_category(&self, candidate: Option<&str>) -> bool {
        let Some(text) = self.text.filter(|_| !self.may_be_dn) else {
            return false;
        };
        let Some(category) = candidate.and_then(|c| Dn::parse(c).ok()) else {
            return false;
        };
        let Some(rdn) = category.rdn() else {
            return false;
        };
        let strip = |s: &str| -> String { folded_chars(s).filter(|&c| c != '-').collect() };
        strip(rdn.first_value()) == strip(text)
    }
}

/// Orders a value against an assertion: as integers when both are, else as folded text, else as
/// bytes.
fn compare(value: &[u8], assertion: &[u8]) -> Ordering {
    match (as_text(value), as_text(assertion)) {
        (Some(v), Some(a)) => match (parse_integer(v), parse_integer(a)) {
            (Some(v), Some(a)) => v.cmp(&a),
            _ => folded_chars(v).cmp(folded_chars(a)),
        },
        _ => value.cmp(assertion),
    }
}

fn parse_integer(s: &str) -> Option<i128> {
    s.trim().parse().ok()
}

/// A substrings assertion, normalised once per evaluation.
struct SubstringPattern<'a> {
    raw: [Option<&'a [u8]>; 2],
    raw_any: Vec<&'a [u8]>,
    /// Folded pieces, when every piece is text.
    text: Option<([Option<String>; 2], Vec<String>)>,
}

/// Folds a substring piece: like `folded_chars`, but only the edges that touch the value's
/// (trimmed) ends are trimmed, so `John *` still needs the space after `John`.
fn fold_piece(s: &str, trim_start: bool, trim_end: bool) -> String {
    let s = if trim_start { s.trim_start() } else { s };
    let s = if trim_end { s.trim_end() } else { s };
    let mut out = String::with_capacity(s.len());
    let mut in_space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            in_space = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

impl<'a> SubstringPattern<'a> {
    fn new(initial: Option<&'a Value>, any: &'a [Value], last: Option<&'a Value>) -> Self {
        let raw = [initial.map(Value::as_bytes), last.map(Value::as_bytes)];
        let raw_any: Vec<&[u8]> = any.iter().map(Value::as_bytes).collect();
        let all_text = raw
            .iter()
            .flatten()
            .chain(&raw_any)
            .all(|p| as_text(p).is_some());
        let text = all_text.then(|| {
            let fold = |p: Option<&[u8]>, start: bool, end: bool| {
                p.and_then(as_text).map(|t| fold_piece(t, start, end))
            };
            (
                [fold(raw[0], true, false), fold(raw[1], false, true)],
                raw_any
                    .iter()
                    .filter_map(|p| as_text(p))
                    .map(|t| fold_piece(t, false, false))
                    .collect(),
            )
        });
        SubstringPattern { raw, raw_any, text }
    }

    fn matches(&self, value: &[u8]) -> bool {
        if let (Some(([initial, last], any)), Some(text)) = (&self.text, as_text(value)) {
            let folded: String = folded_chars(text).collect();
            let any: Vec<&[u8]> = any.iter().map(|s| s.as_bytes()).collect();
            return substrings_match(
                folded.as_bytes(),
                initial.as_deref().map(str::as_bytes),
                &any,
                last.as_deref().map(str::as_bytes),
            );
        }
        substrings_match(value, self.raw[0], &self.raw_any, self.raw[1])
    }
}

fn substrings_match(
    value: &[u8],
    initial: Option<&[u8]>,
    any: &[&[u8]],
    last: Option<&[u8]>,
) -> bool {
    let mut rest = value;
    if let Some(initial) = initial {
        match rest.strip_prefix(initial) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    for piece in any {
        match find(rest, piece) {
            Some(at) => rest = rest.get(at + piece.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    last.is_none_or(|last| rest.ends_with(last))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The matching rules an extensible match can be evaluated with, without schema or server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// No rule given: the attribute's equality rule, as `=` evaluates it.
    Equality,
    CaseIgnore,
    CaseExact,
    Octets,
    DistinguishedName,
    Integer,
    BitAnd,
    BitOr,
    Unsupported,
}

impl Rule {
    fn named(rule: Option<&str>) -> Rule {
        let Some(rule) = rule else {
            return Rule::Equality;
        };
        // Names are descriptors (case-insensitive); OIDs compare exactly.
        const RULES: &[(&str, Rule)] = &[
            ("caseIgnoreMatch", Rule::CaseIgnore),
            ("2.5.13.2", Rule::CaseIgnore),
            ("caseIgnoreIA5Match", Rule::CaseIgnore),
            ("1.3.6.1.4.1.1466.109.114.2", Rule::CaseIgnore),
            ("caseExactMatch", Rule::CaseExact),
            ("2.5.13.5", Rule::CaseExact),
            ("caseExactIA5Match", Rule::CaseExact),
            ("1.3.6.1.4.1.1466.109.114.1", Rule::CaseExact),
            ("octetStringMatch", Rule::Octets),
            ("2.5.13.17", Rule::Octets),
            ("distinguishedNameMatch", Rule::DistinguishedName),
            ("2.5.13.1", Rule::DistinguishedName),
            ("integerMatch", Rule::Integer),
            ("2.5.13.14", Rule::Integer),
            // Active Directory's LDAP_MATCHING_RULE_BIT_AND and _BIT_OR.
            ("1.2.840.113556.1.4.803", Rule::BitAnd),
            ("1.2.840.113556.1.4.804", Rule::BitOr),
        ];
        RULES
            .iter()
            .find(|(name, _)| rule.eq_ignore_ascii_case(name))
            .map_or(Rule::Unsupported, |&(_, kind)| kind)
    }
}

fn extensible_matches(
    entry: &Entry,
    attr: Option<&AttrName>,
    dn_attributes: bool,
    rule: Option<&str>,
    value: &Value,
) -> bool {
    let rule = Rule::named(rule);
    if rule == Rule::Unsupported {
        return false;
    }
    let mut assertion = Assertion::new(value.as_bytes());
    let mut test = |candidate: &[u8]| -> bool {
        match rule {
            Rule::Equality => assertion.equals(candidate),
            Rule::CaseIgnore => match (assertion.text, as_text(candidate)) {
                (Some(a), Some(c)) => text_eq_ignore_case(a, c),
                _ => false,
            },
            Rule::CaseExact | Rule::Octets => assertion.bytes == candidate,
            Rule::DistinguishedName => match (assertion.text, as_text(candidate)) {
                (Some(a), Some(c)) => match (Dn::parse(a), Dn::parse(c)) {
                    (Ok(a), Ok(c)) => a == c,
                    _ => false,
                },
                _ => false,
            },
            Rule::Integer | Rule::BitAnd | Rule::BitOr => {
                let number = |b: &[u8]| as_text(b).and_then(parse_integer);
                match (number(candidate), number(assertion.bytes)) {
                    (Some(c), Some(a)) => match rule {
                        Rule::BitAnd => c & a == a,
                        Rule::BitOr => c & a != 0,
                        _ => c == a,
                    },
                    _ => false,
                }
            }
            Rule::Unsupported => false,
        }
    };
    let in_attributes = match attr {
        Some(attr) => values_of(entry, attr).any(|v| test(v.as_bytes())),
        None => entry.attrs.values().flatten().any(|v| test(v.as_bytes())),
    };
    in_attributes
        || (dn_attributes
            && entry
                .dn
                .rdns()
                .iter()
                .flat_map(|rdn| &rdn.0)
                .filter(|ava| attr.is_none_or(|a| ava.attr == *a))
                .any(|ava| test(ava.value.as_bytes())))
}

// ---------------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------------

impl std::str::FromStr for Filter {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Filter::parse(s)
    }
}
impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Filter::parse(&s).map_err(serde::de::Error::custom)
    }
}
impl schemars::JsonSchema for Filter {
    fn schema_name() -> Cow<'static, str> {
        "Filter".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "description": "An LDAP search filter (RFC 4515), e.g. `(&(objectClass=user)(mail=*))`; \
                            a single item may omit the parentheses (`objectClass=user`)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_compare_as_folding_would() {
        let words = [
            "user",
            "User",
            "USER",
            "users",
            " user",
            "user ",
            "us er",
            "us  er",
            "us\ter",
            "us\u{b}er",
            "ÜSER",
            "üser",
            "",
            " ",
            "a\u{b}",
            "A",
        ];
        for a in words {
            for b in words {
                assert_eq!(
                    text_eq_ignore_case(a, b),
                    folded_chars(a).eq(folded_chars(b)),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }

    fn parse(s: &str) -> Filter {
        Filter::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn error(s: &str) -> FilterError {
        Filter::parse(s).expect_err(s)
    }

    fn attr(s: &str) -> AttrName {
        AttrName::new(s).unwrap()
    }

    fn eq(a: &str, v: &str) -> Filter {
        Filter::Equality {
            attr: attr(a),
            value: Value::text(v),
        }
    }

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    /// Parses, checks the canonical form parses back to the same filter, returns the filter.
    fn round_trip(s: &str) -> Filter {
        let f = parse(s);
        let shown = f.to_string();
        assert_eq!(parse(&shown), f, "{s} displays as {shown}");
        assert_eq!(parse(&shown).to_string(), shown, "canonical form is stable");
        f
    }

    // ---- grammar ------------------------------------------------------------------------------

    #[test]
    fn rfc4515_section_4_examples() {
        let examples = [
            "(cn=Babs Jensen)",
            "(!(cn=Tim Howes))",
            "(&(objectClass=Person)(|(sn=Jensen)(cn=Babs J*)))",
            "(o=univ*of*mich*)",
            "(seeAlso=)",
            "(cn:caseExactMatch:=Fred Flintstone)",
            "(cn:=Betty Rubble)",
            "(sn:dn:2.4.6.8.10:=Barney Rubble)",
            "(o:dn:=Ace Industry)",
            "(:1.2.3:=Wilma Flintstone)",
            "(:DN:2.4.6.8.10:=Dino)",
            r"(o=Parens R Us \28for all your parenthetical needs\29)",
            r"(cn=*\2A*)",
            r"(filename=C:\5cMyFile)",
            r"(bin=\00\00\00\04)",
            r"(sn=Lu\c4\8di\c4\87)",
            r"(1.3.6.1.4.1.1466.0=\04\02\48\69)",
        ];
        for example in examples {
            round_trip(example);
        }
        assert_eq!(parse("(cn=Babs Jensen)"), eq("cn", "Babs Jensen"));
        assert_eq!(
            parse("(!(cn=Tim Howes))"),
            Filter::Not(Box::new(eq("cn", "Tim Howes")))
        );
        assert_eq!(
            parse("(&(objectClass=Person)(|(sn=Jensen)(cn=Babs J*)))"),
            Filter::And(vec![
                eq("objectClass", "Person"),
                Filter::Or(vec![
                    eq("sn", "Jensen"),
                    Filter::Substrings {
                        attr: attr("cn"),
                        initial: Some("Babs J".into()),
                        any: vec![],
                        r#final: None,
                    },
                ]),
            ])
        );
        assert_eq!(
            parse("(o=univ*of*mich*)"),
            Filter::Substrings {
                attr: attr("o"),
                initial: Some("univ".into()),
                any: vec!["of".into(), "mich".into()],
                r#final: None,
            }
        );
        assert_eq!(parse("(seeAlso=)"), eq("seeAlso", ""));
        assert_eq!(
            parse("(cn:caseExactMatch:=Fred Flintstone)"),
            Filter::Extensible {
                attr: Some(attr("cn")),
                dn_attributes: false,
                rule: Some("caseExactMatch".into()),
                value: "Fred Flintstone".into(),
            }
        );
        assert_eq!(
            parse("(sn:dn:2.4.6.8.10:=Barney Rubble)"),
            Filter::Extensible {
                attr: Some(attr("sn")),
                dn_attributes: true,
                rule: Some("2.4.6.8.10".into()),
                value: "Barney Rubble".into(),
            }
        );
        assert_eq!(
            parse("(:DN:2.4.6.8.10:=Dino)"),
            Filter::Extensible {
                attr: None,
                dn_attributes: true,
                rule: Some("2.4.6.8.10".into()),
                value: "Dino".into(),
            }
        );
        assert_eq!(
            parse(r"(o=Parens R Us \28for all your parenthetical needs\29)"),
            eq("o", "Parens R Us (for all your parenthetical needs)")
        );
        assert_eq!(
            parse(r"(cn=*\2A*)"),
            Filter::Substrings {
                attr: attr("cn"),
                initial: None,
                any: vec!["*".into()],
                r#final: None,
            }
        );
        assert_eq!(
            parse(r"(filename=C:\5cMyFile)"),
            eq("filename", r"C:\MyFile")
        );
        assert_eq!(
            parse(r"(bin=\00\00\00\04)"),
            Filter::Equality {
                attr: attr("bin"),
                value: Value::bytes(vec![0, 0, 0, 4]),
            }
        );
        assert_eq!(parse(r"(sn=Lu\c4\8di\c4\87)"), eq("sn", "Lučić"));
        assert_eq!(
            parse(r"(1.3.6.1.4.1.1466.0=\04\02\48\69)"),
            Filter::Equality {
                attr: attr("1.3.6.1.4.1.1466.0"),
                value: Value::bytes(vec![4, 2, b'H', b'i']),
            }
        );
    }

    #[test]
    fn operators() {
        assert_eq!(parse("(cn=*)"), Filter::Present { attr: attr("cn") });
        assert_eq!(
            parse("(uidNumber>=1000)"),
            Filter::GreaterOrEqual {
                attr: attr("uidNumber"),
                value: "1000".into()
            }
        );
        assert_eq!(
            parse("(uidNumber<=1000)"),
            Filter::LessOrEqual {
                attr: attr("uidNumber"),
                value: "1000".into()
            }
        );
        assert_eq!(
            parse("(sn~=Smyth)"),
            Filter::Approx {
                attr: attr("sn"),
                value: "Smyth".into()
            }
        );
        assert_eq!(
            parse("(cn=*smith)"),
            Filter::Substrings {
                attr: attr("cn"),
                initial: None,
                any: vec![],
                r#final: Some("smith".into()),
            }
        );
        assert_eq!(
            parse("(cn=a**b)"),
            Filter::Substrings {
                attr: attr("cn"),
                initial: Some("a".into()),
                any: vec!["".into()],
                r#final: Some("b".into()),
            }
        );
        assert_eq!(
            parse("(cn=\\2a)"),
            eq("cn", "*"),
            "an escaped star is a value"
        );
        assert_eq!(parse("(&)"), Filter::And(vec![]));
        assert_eq!(parse("(|)"), Filter::Or(vec![]));
    }

    #[test]
    fn attribute_options_and_oids() {
        assert_eq!(parse("(cn;lang-de=Anna)"), eq("cn;lang-de", "Anna"));
        assert_eq!(parse("(2.5.4.3=Anna)"), eq("2.5.4.3", "Anna"));
        assert_eq!(parse("(CN=anna)"), eq("cn", "anna"), "names ignore case");
    }

    #[test]
    fn bare_items_and_whitespace() {
        assert_eq!(parse("objectClass=user"), eq("objectClass", "user"));
        assert_eq!(parse("  objectClass=user  \n"), eq("objectClass", "user"));
        assert_eq!(parse("mail=*"), Filter::Present { attr: attr("mail") });
        assert_eq!(parse("cn=John Smith"), eq("cn", "John Smith"));
        assert_eq!(
            parse("(&\n  (objectClass=user)\n  (!  (cn=x))\n)\n"),
            parse("(&(objectClass=user)(!(cn=x)))")
        );
        assert_eq!(
            parse("(cn=a b )"),
            eq("cn", "a b "),
            "spaces in values are kept"
        );
    }

    #[test]
    fn legacy_escapes_are_accepted() {
        assert_eq!(parse(r"(cn=a\*b)"), eq("cn", "a*b"));
        assert_eq!(parse(r"(cn=\(x\))"), eq("cn", "(x)"));
        assert_eq!(parse(r"(cn=a\\b)"), eq("cn", r"a\b"));
    }

    #[test]
    fn escapes_decode_to_bytes() {
        let guid = parse(r"(objectGUID=\de\ad\BE\ef)");
        assert_eq!(
            guid,
            Filter::Equality {
                attr: attr("objectGUID"),
                value: Value::bytes(vec![0xde, 0xad, 0xbe, 0xef]),
            }
        );
        assert_eq!(guid.to_string(), r"(objectGUID=\de\ad\be\ef)");
        assert_eq!(parse(r"(cn=J\c3\bcrgen)"), eq("cn", "Jürgen"));
        assert_eq!(parse("(cn=Jürgen)"), eq("cn", "Jürgen"));
    }

    #[test]
    fn display_is_canonical_and_escapes_values() {
        let cases = [
            ("objectClass=user", "(objectClass=user)"),
            ("( & (a=1) (b=2) )", "(&(a=1)(b=2))"),
            (r"(cn=\2A)", r"(cn=\2a)"),
            (r"(cn=a\*b)", r"(cn=a\2ab)"),
            (r"(cn=\28x\29 \5c)", r"(cn=\28x\29 \5c)"),
            (r"(cn=line\0abreak)", r"(cn=line\0abreak)"),
            (r"(sn=Lu\c4\8di\c4\87)", "(sn=Lučić)"),
            (r"(bin=\ff\00)", r"(bin=\ff\00)"),
            ("(o=univ*of*mich*)", "(o=univ*of*mich*)"),
            ("(cn=*)", "(cn=*)"),
            ("(:DN:2.4.6.8.10:=Dino)", "(:dn:2.4.6.8.10:=Dino)"),
            ("(cn:=x)", "(cn:=x)"),
            ("(x>=1)(", ""),
        ];
        for (input, canonical) in cases {
            if canonical.is_empty() {
                assert!(Filter::parse(input).is_err());
                continue;
            }
            assert_eq!(round_trip(input).to_string(), canonical, "{input}");
        }
    }

    #[test]
    fn constructed_filters_round_trip_through_display() {
        let filters = [
            Filter::And(vec![
                eq("cn", "a(b)c*d\\e"),
                Filter::Not(Box::new(Filter::Or(vec![]))),
                Filter::Substrings {
                    attr: attr("mail"),
                    initial: Some(Value::bytes(vec![0xff, b'*'])),
                    any: vec!["(".into(), "".into()],
                    r#final: Some(" ".into()),
                },
                Filter::Extensible {
                    attr: None,
                    dn_attributes: false,
                    rule: Some("caseIgnoreMatch".into()),
                    value: Value::text("\0\u{7f}é"),
                },
                Filter::Approx {
                    attr: attr("sn;lang-de"),
                    value: "".into(),
                },
            ]),
            Filter::LessOrEqual {
                attr: attr("x"),
                value: Value::bytes((0..=255u8).collect::<Vec<_>>()),
            },
        ];
        for f in filters {
            assert_eq!(parse(&f.to_string()), f, "{f}");
        }
    }

    #[test]
    fn errors_have_positions_and_messages() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "empty filter"),
            ("   ", 0, "empty filter"),
            ("()", 1, "empty filter"),
            (
                "(cn=x",
                5,
                "expected `)` to close the filter opened at byte 0",
            ),
            (
                "(&(cn=x)",
                8,
                "expected `)` to close the filter opened at byte 0",
            ),
            ("(&(cn=x)(|(sn=y)", 16, "opened at byte 8"),
            ("(cn=x))", 6, "unbalanced parentheses"),
            (")", 0, "unbalanced parentheses"),
            ("cn=x)", 4, "unbalanced parentheses"),
            ("(cn=x)(sn=y)", 6, "trailing characters after the filter"),
            ("(cn=x) junk", 7, "trailing characters"),
            (r"(cn=\zz)", 4, "bad escape"),
            (r"(cn=ab\4)", 6, "bad escape"),
            (r"(cn=ab\", 6, "bad escape"),
            ("(cn=a(b)", 5, "unescaped `(`"),
            ("(=x)", 1, "expected an attribute name"),
            ("(cn x)", 3, "unexpected space"),
            ("(cn~x)", 3, "expected `=`, `~=`"),
            ("(cn>=a*)", 6, "`*` is only allowed after `=`"),
            ("(-cn=x)", 1, "must start with a letter or digit"),
            (
                "(&(a=b)x)",
                7,
                "expected `(` to start the next filter inside `&`",
            ),
            ("(!a=b)", 2, "`!` must be followed by a filter"),
            ("(!(a=b)(c=d))", 7, "`!` takes exactly one filter"),
            ("&(a=b)(c=d)", 0, "must be inside parentheses"),
            ("(cn:foo)", 7, "expected `:` after `foo`"),
            (
                "(cn:dn:1.2:3.4:=x)",
                11,
                "at most `:dn` and one matching rule",
            ),
            ("(cn:1..2:=x)", 4, "bad matching rule"),
            ("(:=x)", 1, "needs a matching rule"),
            ("(:dn:=x)", 1, "needs a matching rule"),
        ];
        for (input, position, message) in cases {
            let e = error(input);
            assert!(
                e.message.contains(message),
                "{input:?}: got `{}`, want `{message}`",
                e.message
            );
            assert_eq!(e.position, *position, "{input:?}: {e}");
            assert!(e.to_string().ends_with(&format!("(at byte {position})")));
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}(cn=x){}", "(!".repeat(10_000), ")".repeat(10_000));
        assert!(error(&deep).message.contains("nested too deeply"));
        let ok = format!("{}(cn=x){}", "(!".repeat(50), ")".repeat(50));
        round_trip(&ok);
    }

    #[test]
    fn never_panics_on_odd_input() {
        let alphabet = [
            '(', ')', '&', '|', '!', '=', '*', '\\', ':', '~', '>', '<', 'a', '1', ' ', 'é', ';',
            '.',
        ];
        // Every string of up to 4 characters over the alphabet, then some longer ones.
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let next: Vec<String> = inputs
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            inputs.extend(next.into_iter().filter(|s| s.chars().count() <= 4));
            inputs.sort();
            inputs.dedup();
        }
        for input in &inputs {
            if let Ok(f) = Filter::parse(input) {
                assert_eq!(parse(&f.to_string()), f, "{input:?}");
                let _ = f.matches(&Entry::new(Dn::root()).with("a", "1"));
            }
        }
    }

    // ---- serde & schema -----------------------------------------------------------------------

    #[test]
    fn serde_uses_the_canonical_string() {
        let f = parse("(&(objectClass=user)(cn=a\\2ab))");
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, r#""(&(objectClass=user)(cn=a\\2ab))""#);
        assert_eq!(serde_json::from_str::<Filter>(&json).unwrap(), f);
        let bare: Filter = serde_yaml::from_str("objectClass=user").unwrap();
        assert_eq!(bare, eq("objectClass", "user"));
        let e = serde_json::from_str::<Filter>(r#""(cn=x""#).unwrap_err();
        assert!(e.to_string().contains("opened at byte 0"), "{e}");
        assert_eq!("(cn=x)".parse::<Filter>().unwrap(), eq("cn", "x"));
    }

    #[test]
    fn json_schema_is_a_described_string() {
        let schema = schemars::schema_for!(Filter);
        let json = serde_json::to_value(&schema).unwrap();
        assert_eq!(json["type"], "string");
        assert!(json["description"].as_str().unwrap().contains("RFC 4515"));
    }

    // ---- evaluation ---------------------------------------------------------------------------

    fn mailbox_user() -> Entry {
        let mut e = Entry::new(dn("CN=Smith\\, John,OU=Users,OU=Sales,DC=acme,DC=com"))
            .with("objectClass", "top")
            .with("objectClass", "person")
            .with("objectClass", "organizationalPerson")
            .with("objectClass", "user")
            .with(
                "objectCategory",
                "CN=Person,CN=Schema,CN=Configuration,DC=acme,DC=com",
            )
            .with("cn", "Smith, John")
            .with("displayName", "John  Smith")
            .with("sAMAccountName", "jsmith")
            .with("mail", "John.Smith@acme.com")
            .with("proxyAddresses", "SMTP:John.Smith@acme.com")
            .with("proxyAddresses", "smtp:jsmith@acme.com")
            .with(
                "homeMDB",
                "CN=DB01,CN=Databases,CN=Exchange Administrative Group,CN=Administrative Groups,CN=Acme,CN=Microsoft Exchange,CN=Services,CN=Configuration,DC=acme,DC=com",
            )
            .with("msExchRecipientTypeDetails", "1")
            .with("userAccountControl", "514")
            .with("uSNChanged", "120034")
            .with("whenChanged", "20240315101500.0Z")
            .with("memberOf", "CN=Sales Team,OU=Groups,DC=acme,DC=com")
            .with("description;lang-de", "Vertrieb");
        e.add(
            AttrName::new("objectGUID").unwrap(),
            Value::bytes(vec![0xde, 0xad, 0x28, 0x2a, 0x00, 0xef]),
        );
        e
    }

    fn computer() -> Entry {
        Entry::new(dn("CN=PC01,OU=Computers,DC=acme,DC=com"))
            .with("objectClass", "top")
            .with("objectClass", "person")
            .with("objectClass", "organizationalPerson")
            .with("objectClass", "user")
            .with("objectClass", "computer")
            .with(
                "objectCategory",
                "CN=Computer,CN=Schema,CN=Configuration,DC=acme,DC=com",
            )
            .with("cn", "PC01")
            .with("userAccountControl", "4096")
    }

    fn contact() -> Entry {
        Entry::new(dn("CN=Ext Partner,OU=Contacts,DC=acme,DC=com"))
            .with("objectClass", "contact")
            .with(
                "objectCategory",
                "CN=Organizational-Person,CN=Schema,CN=Configuration,DC=acme,DC=com",
            )
            .with("msExchRecipientTypeDetails", "64")
            .with("targetAddress", "SMTP:partner@example.org")
    }

    fn group() -> Entry {
        Entry::new(dn("CN=Sales Team,OU=Groups,DC=acme,DC=com"))
            .with("objectClass", "group")
            .with("groupType", "-2147483646")
            .with(
                "member",
                "CN=Smith\\, John,OU=Users,OU=Sales,DC=acme,DC=com",
            )
            .with("member", "CN=Ext Partner,OU=Contacts,DC=acme,DC=com")
    }

    fn matches(filter: &str, entry: &Entry) -> bool {
        parse(filter).matches(entry)
    }

    #[test]
    fn classifies_realistic_ad_entries() {
        let mailbox = "(&(objectClass=user)(!(objectClass=computer))(|(homeMDB=*)(msExchRecipientTypeDetails=1)))";
        assert!(matches(mailbox, &mailbox_user()));
        assert!(!matches(mailbox, &computer()));
        assert!(!matches(mailbox, &contact()));
        assert!(!matches(mailbox, &group()));

        let person = "(&(objectCategory=person)(objectClass=user))";
        assert!(matches(person, &mailbox_user()));
        assert!(!matches(person, &computer()));
        assert!(matches("(objectCategory=organizationalPerson)", &contact()));
        assert!(matches(
            "(objectCategory=Organizational-Person)",
            &contact()
        ));
        assert!(!matches("(objectCategory=person)", &contact()));
        assert!(matches(
            "(objectCategory=CN=Person,CN=Schema,CN=Configuration,DC=acme,DC=com)",
            &mailbox_user()
        ));

        assert!(matches("(objectClass=contact)", &contact()));
        assert!(matches("(&(objectClass=group)(member=*))", &group()));
    }

    #[test]
    fn text_compares_ignoring_case_and_extra_spaces() {
        let e = mailbox_user();
        assert!(matches("(OBJECTCLASS=USER)", &e));
        assert!(matches("(displayname=  john smith )", &e));
        assert!(matches("(displayName=John Smith)", &e));
        assert!(matches("(mail=john.smith@ACME.com)", &e));
        assert!(!matches("(mail=john.smith@acme.co)", &e));
        assert!(matches("(sAMAccountName~=JSMITH)", &e));
        assert!(matches("(cn=smith\\2c john)", &e));
        assert!(!matches("(cn=Smith John)", &e));
    }

    #[test]
    fn dn_valued_attributes_compare_as_dns() {
        let g = group();
        assert!(matches(
            "(member=cn=smith\\5c, john, ou=users,ou=sales,dc=ACME,dc=com)",
            &g
        ));
        assert!(matches(
            "(member=CN=Ext Partner, OU=Contacts, DC=acme, DC=com)",
            &g
        ));
        assert!(!matches("(member=CN=Ext Partner,DC=acme,DC=com)", &g));
        assert!(matches(
            "(memberOf=cn=sales team,ou=groups,dc=acme,dc=com)",
            &mailbox_user()
        ));
    }

    #[test]
    fn presence_and_absent_attributes() {
        let e = mailbox_user();
        assert!(matches("(homeMDB=*)", &e));
        assert!(matches("(objectGUID=*)", &e));
        assert!(!matches("(pager=*)", &e));
        for item in [
            "(pager=x)",
            "(pager>=1)",
            "(pager<=1)",
            "(pager~=x)",
            "(pager=a*)",
            "(pager:=x)",
        ] {
            assert!(!matches(item, &e), "{item}");
            assert!(matches(&format!("(!{item})"), &e), "(!{item})");
        }
        let mut empty = Entry::new(dn("CN=e"));
        empty.attrs.insert(attr("pager"), Default::default());
        assert!(
            !matches("(pager=*)", &empty),
            "an attribute with no values is absent"
        );
    }

    #[test]
    fn ordering_is_numeric_when_both_sides_are_integers() {
        let e = mailbox_user();
        assert!(matches("(uSNChanged>=120034)", &e));
        assert!(
            matches("(uSNChanged>=99999)", &e),
            "numerically, not as text"
        );
        assert!(!matches("(uSNChanged<=99999)", &e));
        assert!(matches("(uSNChanged<=120034)", &e));
        assert!(matches("(msExchRecipientTypeDetails>=-5)", &e));
        assert!(matches("(whenChanged>=20240101000000.0Z)", &e));
        assert!(!matches("(whenChanged>=20250101000000.0Z)", &e));
        assert!(matches("(cn>=SMITH)", &e), "text orders without case");
        assert!(matches("(cn<=smith, john)", &e));
        assert!(!matches("(cn<=smith)", &e));
    }

    #[test]
    fn substrings_ignore_case() {
        let e = mailbox_user();
        assert!(matches("(mail=john.*)", &e));
        assert!(matches("(mail=JOHN*@acme.com)", &e));
        assert!(matches("(mail=*SMITH*)", &e));
        assert!(matches("(proxyAddresses=smtp:jsmith@*)", &e));
        assert!(matches("(mail=j*o*n*.*s*h@*m)", &e));
        assert!(!matches("(mail=*smith*john*)", &e));
        assert!(!matches("(mail=john*john)", &e), "pieces may not overlap");
        assert!(matches("(displayName=john *)", &e));
        assert!(!matches("(displayName=johnsm*)", &e));
        assert!(matches("(displayName=john  smith*)", &e));
        assert!(!matches("(cn=*x*)", &e));
    }

    #[test]
    fn binary_values_compare_as_bytes() {
        let e = mailbox_user();
        assert!(matches(r"(objectGUID=\de\ad\28\2a\00\ef)", &e));
        assert!(!matches(r"(objectGUID=\DE\AD\28\2A\00\EE)", &e));
        assert!(matches(r"(objectGUID=\de\ad*)", &e));
        assert!(matches(r"(objectGUID=*\28\2a*)", &e));
        assert!(!matches(r"(objectGUID=\ad*)", &e));
    }

    #[test]
    fn filters_see_subtypes_by_option() {
        let e = mailbox_user();
        assert!(matches("(description=vertrieb)", &e));
        assert!(matches("(description;lang-de=vertrieb)", &e));
        assert!(!matches("(description;lang-fr=vertrieb)", &e));
        assert!(matches("(description=*)", &e));
        assert!(
            !matches("(desc=*)", &e),
            "a prefix of a name is not the name"
        );
        let wide = Entry::new(dn("CN=g"))
            .with("member;range=0-1499", "CN=a")
            .with("cn;lang-de;x-tag", "a");
        assert!(matches("(member=cn=a)", &wide));
        assert!(matches("(cn;x-tag=A)", &wide));
        assert!(matches("(cn;X-TAG;lang-de=A)", &wide));
    }

    #[test]
    fn extensible_matches() {
        let e = mailbox_user();
        assert!(
            matches("(cn:=smith, john)", &e),
            "no rule: the equality rule"
        );
        assert!(matches("(cn:caseIgnoreMatch:=SMITH, JOHN)", &e));
        assert!(matches("(cn:2.5.13.2:=SMITH, JOHN)", &e));
        assert!(!matches("(cn:caseExactMatch:=smith, john)", &e));
        assert!(matches("(cn:caseExactMatch:=Smith, John)", &e));
        assert!(matches("(:caseIgnoreMatch:=jsmith)", &e), "any attribute");
        assert!(matches("(uSNChanged:integerMatch:=0120034)", &e));
        assert!(matches(
            "(memberOf:distinguishedNameMatch:=cn=sales team, ou=groups,dc=acme,dc=com)",
            &e
        ));
        // Disabled accounts, the Active Directory way.
        let disabled = "(userAccountControl:1.2.840.113556.1.4.803:=2)";
        assert!(matches(disabled, &e));
        assert!(!matches(disabled, &computer()));
        assert!(matches(
            "(userAccountControl:1.2.840.113556.1.4.804:=4098)",
            &computer()
        ));
        // Security groups: bit 0x80000000 of a negative (signed 32-bit) groupType.
        assert!(matches(
            "(groupType:1.2.840.113556.1.4.803:=2147483648)",
            &group()
        ));
        assert!(!matches("(groupType:1.2.840.113556.1.4.803:=8)", &group()));
        assert!(matches("(groupType:1.2.840.113556.1.4.803:=2)", &group()));
        // Rules that need the directory or a schema evaluate to false.
        assert!(!matches(
            "(memberOf:1.2.840.113556.1.4.1941:=CN=Sales Team,OU=Groups,DC=acme,DC=com)",
            &e
        ));
        assert!(!matches("(cn:2.4.6.8.10:=Smith, John)", &e));
    }

    #[test]
    fn extensible_dn_attributes_look_in_the_entry_dn() {
        let e = mailbox_user();
        assert!(!matches("(ou=sales)", &e));
        assert!(matches("(ou:dn:=sales)", &e));
        assert!(matches("(ou:dn:caseIgnoreMatch:=SALES)", &e));
        assert!(matches("(:dn:caseIgnoreMatch:=acme)", &e));
        assert!(!matches("(ou:dn:=acme)", &e));
    }

    #[test]
    fn boolean_operators() {
        let e = mailbox_user();
        assert!(matches("(&)", &e));
        assert!(!matches("(|)", &e));
        assert!(matches("(!(|))", &e));
        assert!(matches("(|(cn=nobody)(sAMAccountName=jsmith))", &e));
        assert!(!matches("(&(cn=nobody)(sAMAccountName=jsmith))", &e));
        assert!(matches("(!(!(sAMAccountName=jsmith)))", &e));
    }
}
