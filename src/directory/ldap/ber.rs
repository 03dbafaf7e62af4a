//! A reader of the BER that LDAP messages arrive in (RFC 4511 section 5.1, X.690), over a byte
//! slice, without copying.
//!
//! ldap3's codec builds a tree of tags with a heap vector for every value, and clones it, before
//! a caller sees a message; for a directory of hundreds of thousands of entries that was a third
//! of the CPU a plan spends reading. This reader hands out sub-slices of the received buffer, so
//! the only copies made are the values kept in the snapshot. It reads LDAP's subset of BER:
//! single-byte tags (LDAP's tags are all below 31), definite lengths (RFC 4511 forbids the
//! indefinite form) of up to four length bytes. Anything else is an error, never a panic: the
//! bytes come from the network. This module must not allocate or know about LDAP operations.

use std::fmt;

/// Why bytes are not the BER this reader expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BerError(pub &'static str);

impl fmt::Display for BerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BerError {}

/// Universal and LDAP tags as they appear on the wire (class, constructed bit and number in one
/// byte).
pub mod tag {
    pub const BOOLEAN: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const OCTET_STRING: u8 = 0x04;
    pub const ENUMERATED: u8 = 0x0a;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
    /// `[APPLICATION 1]`, constructed.
    pub const BIND_RESPONSE: u8 = 0x61;
    /// `[APPLICATION 4]`, constructed.
    pub const SEARCH_RESULT_ENTRY: u8 = 0x64;
    /// `[APPLICATION 5]`, constructed.
    pub const SEARCH_RESULT_DONE: u8 = 0x65;
    /// `[APPLICATION 19]`, constructed.
    pub const SEARCH_RESULT_REFERENCE: u8 = 0x73;
    /// `[APPLICATION 24]`, constructed.
    pub const EXTENDED_RESPONSE: u8 = 0x78;
    /// `[APPLICATION 25]`, constructed.
    pub const INTERMEDIATE_RESPONSE: u8 = 0x79;
    /// `[0]`, constructed: a message's controls.
    pub const CONTROLS: u8 = 0xa0;
    /// `[3]`, constructed: an LDAPResult's referral.
    pub const REFERRAL: u8 = 0xa3;
}

/// The most length bytes accepted: four cover any message a server could send (4 GiB).
const MAX_LENGTH_BYTES: usize = 4;

/// The size of the first element of `buf` (tag, length and contents), once its header has
/// arrived: `Ok(None)` while more bytes are needed to know it.
pub fn element_len(buf: &[u8]) -> Result<Option<usize>, BerError> {
    match header(buf)? {
        Some((_, header, content)) => Ok(Some(header.saturating_add(content))),
        None => Ok(None),
    }
}

/// The tag, header length and content length at the start of `buf`, or `None` when the header
/// is not complete yet.
fn header(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, BerError> {
    let (Some(&tag), Some(&first)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if tag & 0x1f == 0x1f {
        return Err(BerError("a tag number above 30, which LDAP does not use"));
    }
    if first < 0x80 {
        return Ok(Some((tag, 2, usize::from(first))));
    }
    let count = usize::from(first & 0x7f);
    if count == 0 {
        return Err(BerError("an indefinite length, which LDAP forbids"));
    }
    if count > MAX_LENGTH_BYTES {
        return Err(BerError("a length of more than four bytes"));
    }
    let Some(bytes) = buf.get(2..2 + count) else {
        return Ok(None);
    };
    let len = bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
    Ok(Some((tag, 2 + count, len)))
}

/// A cursor over a sequence of BER elements.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element's tag, without reading it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element: its tag and its contents.
    pub fn next(&mut self) -> Result<(u8, &'a [u8]), BerError> {
        let Some((tag, header, len)) = header(self.rest)? else {
            return Err(BerError("an element is cut short"));
        };
        let end = header
            .checked_add(len)
            .filter(|&end| end <= self.rest.len())
            .ok_or(BerError("an element is longer than what holds it"))?;
        let content = &self.rest[header..end];
        self.rest = &self.rest[end..];
        Ok((tag, content))
    }

    /// The next element's contents, which must carry `want` as tag.
    pub fn expect(&mut self, want: u8, what: &'static str) -> Result<&'a [u8], BerError> {
        match self.next()? {
            (tag, content) if tag == want => Ok(content),
            _ => Err(BerError(what)),
        }
    }

    /// The next element, read as an INTEGER or ENUMERATED of at most 8 bytes.
    pub fn integer(&mut self, want: u8, what: &'static str) -> Result<i64, BerError> {
        integer(self.expect(want, what)?).ok_or(BerError(what))
    }
}

/// Two's-complement big-endian contents of at most 8 bytes.
pub fn integer(content: &[u8]) -> Option<i64> {
    if content.is_empty() || content.len() > 8 {
        return None;
    }
    let negative = content[0] & 0x80 != 0;
    let start = if negative { -1i64 } else { 0 };
    Some(content.iter().fold(start, |n, &b| (n << 8) | i64::from(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_short_and_long() {
        assert_eq!(element_len(&[0x04, 0x03, b'a', b'b', b'c']), Ok(Some(5)));
        assert_eq!(element_len(&[0x04, 0x81, 0x80]), Ok(Some(3 + 128)));
        assert_eq!(element_len(&[0x30, 0x82, 0x01, 0x00]), Ok(Some(4 + 256)));
        assert_eq!(
            element_len(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            Ok(Some(6 + 0xffff_ffff))
        );
        // Headers not complete yet.
        assert_eq!(element_len(&[]), Ok(None));
        assert_eq!(element_len(&[0x30]), Ok(None));
        assert_eq!(element_len(&[0x30, 0x82, 0x01]), Ok(None));
    }

    #[test]
    fn forms_ldap_does_not_use_are_refused() {
        assert!(element_len(&[0x30, 0x80]).is_err(), "indefinite length");
        assert!(
            element_len(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_err(),
            "five length bytes"
        );
        assert!(element_len(&[0x1f, 0x81, 0x01]).is_err(), "high tag number");
    }

    #[test]
    fn elements_are_read_in_order_and_never_past_the_end() {
        let bytes = [0x02, 0x01, 0x05, 0x04, 0x02, b'h', b'i', 0x30, 0x00];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.integer(tag::INTEGER, "id"), Ok(5));
        assert_eq!(r.peek_tag(), Some(tag::OCTET_STRING));
        assert_eq!(r.expect(tag::OCTET_STRING, "s"), Ok(&b"hi"[..]));
        assert_eq!(r.expect(tag::SET, "not a set"), Err(BerError("not a set")));
        assert!(r.is_empty());
        assert!(r.next().is_err());

        // Every truncation of a valid element is an error, not a panic or a shorter value.
        let whole = [0x30, 0x81, 0x05, 0x04, 0x03, b'a', b'b', b'c'];
        assert!(Reader::new(&whole).next().is_ok());
        for cut in 0..whole.len() {
            assert!(Reader::new(&whole[..cut]).next().is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn integers_are_twos_complement() {
        assert_eq!(integer(&[0x00]), Some(0));
        assert_eq!(integer(&[0x7f]), Some(127));
        assert_eq!(integer(&[0x00, 0x80]), Some(128));
        assert_eq!(integer(&[0xff]), Some(-1));
        assert_eq!(integer(&[0x80]), Some(-128));
        assert_eq!(integer(&[0x01, 0, 0, 0, 0, 0, 0, 0]), Some(1 << 56));
        assert_eq!(integer(&[]), None);
        assert_eq!(integer(&[1; 9]), None);
    }
}
