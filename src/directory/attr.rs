//! Attribute names and values: the two atoms every directory entry is made of.
//!
//! `AttrName` compares case-insensitively (LDAP attribute descriptions are case-insensitive) but
//! keeps the spelling it was first given for display. `Value` holds raw bytes, because LDAP values
//! may be binary (objectGUID, msExchMailboxGuid); text accessors are provided for the common case.
//! This module must not know about any directory flavor or matching rule.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex};

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An attribute description such as `proxyAddresses` or `cn;lang-de`, compared case-insensitively.
///
/// Names are interned: a directory of 300,000 entries repeats a few dozen names millions of
/// times, so each distinct spelling is stored once, for the life of the process, and an
/// `AttrName` is a plain reference to it. Copying one touches no reference count, which
/// matters when several threads copy the same few names millions of times.
#[derive(Clone)]
pub struct AttrName(&'static Spelling);

struct Spelling {
    display: Box<str>,
    folded: Box<str>,
    /// Where `;options` start in `folded` (its length when there are none): filters ask this
    /// of a name for every entry they test.
    options_at: usize,
}

/// Every spelling seen so far. It only grows, by the number of distinct names in the inputs
/// (which is why its spellings may live as long as the process).
static INTERNED: LazyLock<Mutex<FxHashMap<Box<str>, &'static Spelling>>> =
    LazyLock::new(Default::default);

/// Why a string is not a valid attribute description (RFC 4512 `attributedescription`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttrNameError {
    #[error("an attribute name cannot be empty")]
    Empty,
    #[error("attribute name `{0}` must start with a letter or digit")]
    BadStart(String),
    #[error(
        "attribute name `{name}` contains `{ch}`; only letters, digits, `-`, `.` and `;options` are allowed"
    )]
    BadChar { name: String, ch: char },
}

/// A character of an attribute type: an ASCII letter or digit, `-` or `.` (a description
/// adds `;` before each option).
pub(crate) fn is_type_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'.'
}

impl AttrName {
    /// Parses an attribute description: a descriptor (`cn`) or numeric OID (`2.5.4.3`), optionally
    /// followed by `;options`.
    pub fn new(s: &str) -> Result<Self, AttrNameError> {
        let first = s.chars().next().ok_or(AttrNameError::Empty)?;
        if !first.is_ascii_alphanumeric() {
            return Err(AttrNameError::BadStart(s.to_string()));
        }
        if let Some(ch) = s
            .chars()
            .find(|&c| !(c == ';' || u8::try_from(c).is_ok_and(is_type_char)))
        {
            return Err(AttrNameError::BadChar {
                name: s.to_string(),
                ch,
            });
        }
        Ok(Self::new_unchecked(s))
    }

    /// For names that are compile-time constants of this crate.
    pub fn new_unchecked(s: &str) -> Self {
        // Readers and the planner intern millions of names on several threads: each thread
        // asks its own copy first, and takes the shared lock only for a spelling new to it.
        thread_local! {
            static SEEN: std::cell::RefCell<FxHashMap<Box<str>, &'static Spelling>> =
                Default::default();
        }
        if let Some(sp) = SEEN.with_borrow(|seen| seen.get(s).copied()) {
            return AttrName(sp);
        }
        let sp = {
            // A poisoned lock only means another thread panicked mid-insert; the map is valid.
            let mut map = INTERNED.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(s) {
                Some(sp) => *sp,
                None => {
                    let sp: &'static Spelling = Box::leak(Box::new(Spelling {
                        display: s.into(),
                        folded: s.to_ascii_lowercase().into(),
                        options_at: s.find(';').unwrap_or(s.len()),
                    }));
                    map.insert(s.into(), sp);
                    sp
                }
            }
        };
        SEEN.with_borrow_mut(|seen| seen.insert(s.into(), sp));
        AttrName(sp)
    }

    /// The spelling as first seen, for output.
    pub fn as_str(&self) -> &str {
        &self.0.display
    }

    /// The lower-cased form used for comparison.
    pub fn folded(&self) -> &str {
        &self.0.folded
    }

    /// The folded name without its options, and the options (`cn;lang-de` is `cn` and
    /// `;lang-de`; `cn` is `cn` and ``).
    pub fn folded_parts(&self) -> (&str, &str) {
        self.0.folded.split_at(self.0.options_at)
    }

    /// True when this name equals `other`, ignoring case.
    pub fn is(&self, other: &str) -> bool {
        self.0.folded.eq_ignore_ascii_case(other)
    }
}

/// An attribute name to look up by, borrowed and unfolded: `entry.attrs.get(AttrKey::new("mail"))`
/// finds `mail` whatever its spelling, without interning or allocating.
///
/// It orders by the ASCII-lower-cased bytes, which is exactly how `AttrName` orders (by its
/// folded form), so an `AttrName` can be borrowed as one.
#[derive(ref_cast::RefCast)]
#[repr(transparent)]
pub struct AttrKey(str);

impl AttrKey {
    pub fn new(name: &str) -> &AttrKey {
        ref_cast::RefCast::ref_cast(name)
    }
    fn folded_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        self.0.bytes().map(|b| b.to_ascii_lowercase())
    }
}

impl PartialEq for AttrKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}
impl Eq for AttrKey {}
impl PartialOrd for AttrKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for AttrKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.folded_bytes().cmp(other.folded_bytes())
    }
}
impl Hash for AttrKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.folded_bytes() {
            state.write_u8(b);
        }
        state.write_u8(0xff);
    }
}

impl Borrow<AttrKey> for AttrName {
    fn borrow(&self) -> &AttrKey {
        AttrKey::new(&self.0.folded)
    }
}

impl PartialEq for AttrName {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0) || self.0.folded == other.0.folded
    }
}
impl Eq for AttrName {}
impl Hash for AttrName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The same as its key's, so maps keyed by names can be searched by `AttrKey`.
        Borrow::<AttrKey>::borrow(self).hash(state)
    }
}
impl PartialOrd for AttrName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for AttrName {
    fn cmp(&self, other: &Self) -> Ordering {
        if std::ptr::eq(self.0, other.0) {
            return Ordering::Equal;
        }
        self.0.folded.cmp(&other.0.folded)
    }
}
impl fmt::Display for AttrName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.display)
    }
}
impl fmt::Debug for AttrName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0.display)
    }
}
impl Serialize for AttrName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.display)
    }
}
impl<'de> Deserialize<'de> for AttrName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AttrName::new(&s).map_err(serde::de::Error::custom)
    }
}

/// One attribute value. Text in almost every case; bytes where the directory says so.
///
/// A snapshot holds millions of values and a plan copies many of them (into changes, backups
/// and mailboxes), so a value is 24 bytes: short ones (object classes, names, flags, phone
/// numbers) inline, with no allocation at all; longer ones shared, so a copy is a reference
/// count. It compares, orders and hashes as its bytes.
///
/// Whether the bytes are text is worked out once, when the value is made: filters, indexes, the
/// planner and the renderer each read a value as text again, and checking its UTF-8 every time
/// was 3–5% of a large plan's CPU time.
#[derive(Clone)]
pub struct Value(Repr);

/// The longest value kept inline.
const INLINE: usize = 21;

#[derive(Clone)]
enum Repr {
    Inline {
        kind: Kind,
        len: u8,
        bytes: [u8; INLINE],
    },
    Shared {
        kind: Kind,
        bytes: Arc<[u8]>,
    },
}

// Checked here rather than trusted: a field added to `Repr` must not grow every value.
const _: () = assert!(std::mem::size_of::<Value>() == 24);

/// What a value's bytes are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// UTF-8 with no control characters but tab: shown as it is.
    Text,
    /// UTF-8 that holds control characters: text to compare, base64 to show.
    ControlText,
    /// Not UTF-8.
    Bytes,
}

impl Kind {
    /// True for bytes that are all printable ASCII (or tab): almost every value. Without an
    /// early exit, the loop runs over whole vector registers.
    fn printable_ascii(b: &[u8]) -> bool {
        b.iter().fold(true, |ok, &c| {
            ok & (c.wrapping_sub(0x20) < 0x5f || c == b'\t')
        })
    }
    fn of_text(s: &str) -> Kind {
        if Kind::printable_ascii(s.as_bytes()) {
            return Kind::Text;
        }
        // `char::is_control` is U+0000–U+001F and U+007F–U+009F; in UTF-8 the last 32 are
        // 0xC2 followed by 0x80–0x9F, and 0xC2 is never anything but a lead byte. Bytes are
        // scanned instead of chars: every value of a directory comes through here.
        let b = s.as_bytes();
        let control = b.iter().enumerate().any(|(i, &c)| {
            (c < 0x20 && c != b'\t')
                || c == 0x7f
                || (c == 0xc2 && b.get(i + 1).is_some_and(|n| (0x80..0xa0).contains(n)))
        });
        if control {
            Kind::ControlText
        } else {
            Kind::Text
        }
    }
    fn of(b: &[u8]) -> Kind {
        if Kind::printable_ascii(b) {
            return Kind::Text;
        }
        std::str::from_utf8(b).map_or(Kind::Bytes, Kind::of_text)
    }
}

impl Value {
    fn new(kind: Kind, b: &[u8]) -> Self {
        match u8::try_from(b.len()) {
            Ok(len) if b.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..b.len()].copy_from_slice(b);
                Value(Repr::Inline { kind, len, bytes })
            }
            _ => Value(Repr::Shared {
                kind,
                bytes: b.into(),
            }),
        }
    }
    fn kind(&self) -> Kind {
        match &self.0 {
            Repr::Inline { kind, .. } | Repr::Shared { kind, .. } => *kind,
        }
    }
    pub fn text(s: impl Into<String>) -> Self {
        let s = s.into();
        Self::new(Kind::of_text(&s), s.as_bytes())
    }
    pub fn bytes(b: impl AsRef<[u8]>) -> Self {
        let b = b.as_ref();
        Self::new(Kind::of(b), b)
    }
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes, .. } => &bytes[..usize::from(*len)],
            Repr::Shared { bytes, .. } => bytes,
        }
    }
    /// The value as text, when it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self.kind() {
            Kind::Bytes => None,
            // SAFETY: a value's kind is set only by `new`, from `Kind::of` or `Kind::of_text`
            // over these very bytes, which are never changed after; both say `Text` or
            // `ControlText` only for valid UTF-8.
            Kind::Text | Kind::ControlText => {
                Some(unsafe { std::str::from_utf8_unchecked(self.as_bytes()) })
            }
        }
    }
    /// True when the value is not printable text and must be shown or written as base64.
    pub fn is_binary(&self) -> bool {
        self.kind() != Kind::Text
    }
    /// A 16-byte binary value as Active Directory writes a GUID (objectGUID, msExchMailboxGuid):
    /// the first three groups little-endian, the rest in byte order. `None` for anything else.
    pub fn guid_text(&self) -> Option<String> {
        let b: &[u8; 16] = self.as_bytes().try_into().ok()?;
        if !self.is_binary() {
            return None;
        }
        Some(format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[3],
            b[2],
            b[1],
            b[0],
            b[5],
            b[4],
            b[7],
            b[6],
            b[8],
            b[9],
            b[10],
            b[11],
            b[12],
            b[13],
            b[14],
            b[15]
        ))
    }
    /// Text for people: the string itself, or `base64:…` for binary values.
    pub fn display(&self) -> String {
        if self.is_binary() {
            format!(
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(self.as_bytes())
            )
        } else {
            String::from_utf8_lossy(self.as_bytes()).into_owned()
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::text(s)
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::text(s)
    }
}
impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.display())
    }
}
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}
/// Values serialize as strings; binary ones as `base64:…`, which `Deserialize` reverses, so a saved
/// plan round-trips exactly.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.display())
    }
}
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Some(b64) = s.strip_prefix("base64:")
            && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64)
        {
            let v = Value::bytes(bytes);
            if v.is_binary() {
                return Ok(v);
            }
        }
        Ok(Value::text(s))
    }
}
impl schemars::JsonSchema for Value {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Value".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An attribute value; binary values are written `base64:<base64>`."
        })
    }
}
impl schemars::JsonSchema for AttrName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AttrName".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Za-z0-9][A-Za-z0-9.;-]*$",
            "description": "An LDAP attribute name (case-insensitive)."
        })
    }
}

impl Borrow<[u8]> for Value {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for Value {}
impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}
impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `[u8]` hashes, which `Borrow<[u8]>` requires.
        self.as_bytes().hash(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_binary_bytes_read_as_an_ad_guid() {
        // The msExchMailboxGuid of the Samba test data, and how AD tools print it.
        let v = Value::bytes(vec![
            0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
            0x66, 0x77,
        ]);
        assert_eq!(
            v.guid_text().as_deref(),
            Some("efbeadde-feca-beba-0011-223344556677")
        );
        assert_eq!(Value::text("0123456789abcdef").guid_text(), None);
        assert_eq!(Value::bytes(vec![0xff; 15]).guid_text(), None);
    }

    #[test]
    fn values_inline_and_shared_compare_as_their_bytes() {
        use std::hash::BuildHasher;
        let hasher = std::collections::hash_map::RandomState::new();
        // Around the inline limit, and one value that is not UTF-8.
        let raw: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"a".repeat(INLINE - 1),
            b"a".repeat(INLINE),
            b"a".repeat(INLINE + 1),
            [b"a".repeat(INLINE), b"b".to_vec()].concat(),
            b"b".to_vec(),
            vec![0xff, 0x00, 0xfe],
        ];
        for a in &raw {
            let va = Value::bytes(a.clone());
            assert_eq!(va.as_bytes(), a.as_slice());
            assert_eq!(hasher.hash_one(&va), hasher.hash_one(a.as_slice()));
            for b in &raw {
                let vb = Value::bytes(b.clone());
                assert_eq!(va.cmp(&vb), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(va == vb, a == b);
            }
        }
        let long = Value::text("x".repeat(100));
        assert_eq!(long.clone().as_str(), Some("x".repeat(100).as_str()));
    }

    #[test]
    fn text_is_told_from_bytes_once_and_the_same_as_checking_each_time() {
        let raw: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"plain".to_vec(),
            b"tab\tstays text".to_vec(),
            b"new\nline".to_vec(),
            b"\x00".to_vec(),
            "M\u{fc}ller \u{7f}".as_bytes().to_vec(),
            "Gr\u{fc}\u{df}e aus K\u{f6}ln und dar\u{fc}ber hinaus"
                .as_bytes()
                .to_vec(),
            vec![0xff, 0xfe],
            // A multi-byte character cut at the end, inline and shared.
            "\u{e9}".as_bytes()[..1].to_vec(),
            [b"x".repeat(40), "\u{e9}".as_bytes()[..1].to_vec()].concat(),
            "\u{85}next line".as_bytes().to_vec(),
        ];
        let every_char: Vec<Vec<u8>> = (0..0x800u32)
            .chain([0xfeff, 0x2028, 0x1_f600])
            .filter_map(char::from_u32)
            .map(|c| format!("a{c}b").into_bytes())
            .collect();
        for b in raw.iter().chain(&every_char) {
            let text = std::str::from_utf8(b).ok();
            let binary = text.is_none_or(|s| s.chars().any(|c| c.is_control() && c != '\t'));
            for v in [Value::bytes(b.clone()), Value::bytes(b.clone()).clone()] {
                assert_eq!(v.as_str(), text, "{b:?}");
                assert_eq!(v.is_binary(), binary, "{b:?}");
            }
            if let Some(s) = text {
                let v = Value::text(s);
                assert_eq!((v.as_str(), v.is_binary()), (Some(s), binary));
            }
        }
    }

    #[test]
    fn attr_names_compare_without_case() {
        let a = AttrName::new("proxyAddresses").unwrap();
        let b = AttrName::new("PROXYADDRESSES").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "proxyAddresses");
        assert!(a.is("proxyaddresses"));
    }

    #[test]
    fn attr_names_are_checked() {
        assert_eq!(AttrName::new(""), Err(AttrNameError::Empty));
        assert!(AttrName::new("-cn").is_err());
        assert!(AttrName::new("c n").is_err());
        assert!(AttrName::new("cn;lang-de").is_ok());
        assert!(AttrName::new("2.5.4.3").is_ok());
    }

    #[test]
    fn binary_values_round_trip_through_serde() {
        let v = Value::bytes(vec![0xde, 0xad, 0x00, 0xef]);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, "\"base64:3q0A7w==\"");
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        let text: Value = serde_json::from_str("\"base64:not binary\"").unwrap();
        assert_eq!(text.as_str(), Some("base64:not binary"));
    }
}

/// The values of one attribute: a set, kept as a sorted vector.
///
/// Most attributes hold one value, and a `BTreeSet` spends a whole node on it; a sorted vector is
/// a tenth of the memory for the same set semantics (no duplicates, sorted iteration), which is
/// what lets snapshots of several hundred thousand entries fit the memory budget. The one value
/// most attributes hold is kept inline: an allocation less per attribute, millions per plan.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValueSet(SmallVec<[Value; 1]>);

impl ValueSet {
    pub const fn new() -> Self {
        ValueSet(SmallVec::new_const())
    }

    /// Adds a value; returns false when it was already there.
    pub fn insert(&mut self, v: Value) -> bool {
        match self.0.binary_search(&v) {
            Ok(_) => false,
            Err(i) => {
                self.0.insert(i, v);
                true
            }
        }
    }

    pub fn remove(&mut self, v: &Value) -> bool {
        match self.0.binary_search(v) {
            Ok(i) => {
                self.0.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    pub fn contains(&self, v: &Value) -> bool {
        self.0.binary_search(v).is_ok()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Value> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn first(&self) -> Option<&Value> {
        self.0.first()
    }

    /// Values in `self` but not in `other`, in order.
    pub fn difference<'a>(&'a self, other: &'a ValueSet) -> impl Iterator<Item = &'a Value> + 'a {
        self.0.iter().filter(move |v| !other.contains(v))
    }

    /// Values in either set, in order.
    pub fn union(&self, other: &ValueSet) -> ValueSet {
        self.0.iter().chain(other.0.iter()).cloned().collect()
    }
}

impl FromIterator<Value> for ValueSet {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Self {
        ValueSet::from_values(iter.into_iter().collect())
    }
}

impl ValueSet {
    /// The set of `values`, in any order and with any repeats. Readers build millions of sets,
    /// nearly all of one value, which needs neither sorting nor shrinking.
    pub fn from_values(mut values: SmallVec<[Value; 1]>) -> Self {
        if values.len() > 1 {
            values.sort_unstable();
            values.dedup();
            values.shrink_to_fit();
        }
        ValueSet(values)
    }
}

impl<const N: usize> From<[Value; N]> for ValueSet {
    fn from(values: [Value; N]) -> Self {
        values.into_iter().collect()
    }
}

impl Extend<Value> for ValueSet {
    fn extend<I: IntoIterator<Item = Value>>(&mut self, iter: I) {
        for v in iter {
            self.insert(v);
        }
    }
}

impl IntoIterator for ValueSet {
    type Item = Value;
    type IntoIter = smallvec::IntoIter<[Value; 1]>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ValueSet {
    type Item = &'a Value;
    type IntoIter = std::slice::Iter<'a, Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for ValueSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

impl Serialize for ValueSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ValueSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Value>::deserialize(d)?.into_iter().collect())
    }
}

impl schemars::JsonSchema for ValueSet {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ValueSet".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "array",
            "uniqueItems": true,
            "items": g.subschema_for::<Value>(),
            "description": "A set of attribute values, sorted."
        })
    }
}

#[cfg(test)]
mod value_set_tests {
    use super::*;

    #[test]
    fn behaves_as_a_sorted_set() {
        let mut s: ValueSet = ["b", "a", "b"].into_iter().map(Value::from).collect();
        assert_eq!(s.len(), 2);
        assert!(!s.insert(Value::from("a")));
        assert!(s.insert(Value::from("0")));
        let items: Vec<String> = s.iter().map(Value::display).collect();
        assert_eq!(items, ["0", "a", "b"]);
        let other = ValueSet::from([Value::from("a"), Value::from("c")]);
        assert_eq!(
            s.difference(&other).map(Value::display).collect::<Vec<_>>(),
            ["0", "b"]
        );
        assert_eq!(s.union(&other).len(), 4);
        assert!(s.remove(&Value::from("a")) && !s.contains(&Value::from("a")));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<ValueSet>(&json).unwrap(), s);
    }
}
