//! Message identity: what makes "this message was already copied" decidable across stores.
//!
//! An identity is a base and a variant, `base#variant`. The base is the normalised Message-ID:
//! angle brackets and surrounding blanks removed, lower-cased (`mid:` + id). Domino rewrites the
//! right-hand side of the Message-IDs it generates (`<OF1A2B…-ON3C4D…-…@LocalDomain>` leaves as
//! `…@acme.com` once routed through SMTP), so for ids whose left-hand side has Domino's
//! `OF….-ON….` shape only the left-hand side counts (`domino:` + it). Without a Message-ID the
//! base is a SHA-256 of Date, From, Subject and the size with CRLF line ends (what IMAP reports
//! as RFC822.SIZE, whatever the store keeps on disk), `hash:` + the first 32 hex digits.
//!
//! The variant tells apart different messages that share a Message-ID, such as the copy of a
//! post that came through a mailing list and the copy sent directly: it is the first 16 hex
//! digits of a SHA-256 of Date, From, Subject and every `Received:` value, each with its
//! whitespace collapsed. An APPEND stores these fields as given, so a message and its copy at
//! the destination have one identity, and a lost ledger still finds every copy there; the size
//! is not part of it, as servers report approximate sizes. Two messages with one identity are
//! the same message twice. Identities from before the variant existed are the base alone; see
//! [`base`]. Pure: header bytes in, strings out.

use sha2::{Digest, Sha256};

/// The header fields identity needs, unfolded, as found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    pub message_id: Option<String>,
    pub date: Option<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
    /// Every `Received:` value, in order.
    pub received: Vec<String>,
}

/// The header fields a store must read for [`identity`], as IMAP names them.
pub const IDENTITY_FIELDS: &str = "MESSAGE-ID DATE FROM SUBJECT RECEIVED";

/// Reads the fields from a message's header block (everything before the first empty line; the
/// whole input when there is none). Bytes that are not UTF-8 are read as Latin-1, so a
/// malformed header still has a stable identity.
pub fn parse_headers(raw: &[u8]) -> Headers {
    let end = header_end(raw).unwrap_or(raw.len());
    let text: String = match std::str::from_utf8(&raw[..end]) {
        Ok(s) => s.to_string(),
        Err(_) => raw[..end].iter().map(|&b| b as char).collect(),
    };
    let mut h = Headers::default();
    let mut current: Option<(String, String)> = None;
    let finish = |field: Option<(String, String)>, h: &mut Headers| {
        let Some((name, value)) = field else { return };
        let value = value.trim().to_string();
        let slot = match name.to_ascii_lowercase().as_str() {
            "received" => {
                h.received.push(value);
                return;
            }
            "message-id" => &mut h.message_id,
            "date" => &mut h.date,
            "from" => &mut h.from,
            "subject" => &mut h.subject,
            _ => return,
        };
        if slot.is_none() {
            *slot = Some(value);
        }
    };
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = current.as_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        finish(current.take(), &mut h);
        if let Some((name, value)) = line.split_once(':') {
            current = Some((name.trim().to_string(), value.to_string()));
        }
    }
    finish(current.take(), &mut h);
    h
}

/// Where the header block ends (the index of the empty line's first byte), if it does.
pub fn header_end(raw: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\n' {
            match raw.get(i + 1) {
                Some(b'\n') => return Some(i + 1),
                Some(b'\r') if raw.get(i + 2) == Some(&b'\n') => return Some(i + 1),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// The normalised Message-ID, when there is a usable one.
pub fn normalise_message_id(id: &str) -> Option<String> {
    let id = id.trim();
    // Only the first id when a broken header holds several.
    let id = match (id.find('<'), id.find('>')) {
        (Some(a), Some(b)) if a < b => &id[a + 1..b],
        _ => id.split_whitespace().next().unwrap_or(""),
    };
    let id = id.trim().to_lowercase();
    if id.is_empty() {
        return None;
    }
    if let Some((left, _right)) = id.rsplit_once('@')
        && is_domino_left(left)
    {
        return Some(format!("domino:{left}"));
    }
    Some(format!("mid:{id}"))
}

/// Domino's generated ids: `of` + hex, `.` hex, `-on` + hex … (already lower-cased).
fn is_domino_left(left: &str) -> bool {
    let Some(rest) = left.strip_prefix("of") else {
        return false;
    };
    rest.contains("-on")
        && rest
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '.' || c == '-' || c == 'o' || c == 'n')
}

/// The identity of a message from its header fields and its size with CRLF line ends.
pub fn identity(h: &Headers, crlf_size: u64) -> String {
    format!("{}#{}", base_identity(h, crlf_size), variant(h))
}

/// The base of an identity: the Message-ID part, or the hash of messages without one. An
/// identity without a variant (as recorded before variants existed) is its own base.
pub fn base(identity: &str) -> &str {
    match identity.rsplit_once('#') {
        Some((base, variant))
            if variant.len() == VARIANT_HEX && variant.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            base
        }
        _ => identity,
    }
}

/// Hex digits of a variant.
const VARIANT_HEX: usize = 16;

fn base_identity(h: &Headers, crlf_size: u64) -> String {
    if let Some(id) = h.message_id.as_deref().and_then(normalise_message_id) {
        return id;
    }
    let mut hasher = Sha256::new();
    for part in [&h.date, &h.from, &h.subject] {
        hasher.update(part.as_deref().unwrap_or("").trim().as_bytes());
        hasher.update([0u8]);
    }
    hasher.update(crlf_size.to_string().as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("hash:{hex}")
}

/// What tells apart messages with one base: Date, From, Subject and the `Received:` trail.
fn variant(h: &Headers) -> String {
    let mut hasher = Sha256::new();
    let fields = [&h.date, &h.from, &h.subject];
    for part in fields.into_iter().map(|f| f.as_deref().unwrap_or("")) {
        hasher.update(collapse(part).as_bytes());
        hasher.update([0u8]);
    }
    for r in &h.received {
        hasher.update(collapse(r).as_bytes());
        hasher.update([1u8]);
    }
    let digest = hasher.finalize();
    digest
        .iter()
        .take(VARIANT_HEX / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs of whitespace as one space, none at the ends.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The size of a message once every bare LF is a CRLF.
pub fn crlf_size(raw: &[u8]) -> u64 {
    let mut extra = 0u64;
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            extra += 1;
        }
        prev = b;
    }
    raw.len() as u64 + extra
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_normalised() {
        assert_eq!(
            normalise_message_id(" <ABC.123@Example.COM> ").as_deref(),
            Some("mid:abc.123@example.com")
        );
        // Domino's rewritten domain part does not change the identity.
        let a = normalise_message_id(
            "<OF6E3A1B2C.4D5E6F70-ON85257A1B.0012ABCD-85257A1B.0012ABCE@LocalDomain>",
        );
        let b = normalise_message_id(
            "<OF6E3A1B2C.4D5E6F70-ON85257A1B.0012ABCD-85257A1B.0012ABCE@acme.com>",
        );
        assert_eq!(a, b);
        assert!(
            a.as_deref()
                .is_some_and(|s| s.starts_with("domino:of6e3a1b2c"))
        );
        // An ordinary id that happens to start with "of" keeps its domain.
        assert_eq!(
            normalise_message_id("<offer-1@shop.example>").as_deref(),
            Some("mid:offer-1@shop.example")
        );
        assert_eq!(normalise_message_id("<>"), None);
    }

    #[test]
    fn headers_unfold_and_fall_back_to_a_hash() {
        let raw = b"From: A <a@x>\r\nSubject: long\r\n  subject\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nbody\nMessage-ID: <not-a-header@x>\n";
        let h = parse_headers(raw);
        assert_eq!(h.subject.as_deref(), Some("long subject"));
        assert_eq!(h.message_id, None);
        let id = identity(&h, crlf_size(raw));
        assert!(id.starts_with("hash:"));
        assert_eq!(id, identity(&h, crlf_size(raw)));
        assert_ne!(id, identity(&h, crlf_size(raw) + 1));
        assert_eq!(crlf_size(b"a\nb\r\n"), 6);
    }

    const POST: &str = "Message-ID: <post-1@lists.example>\r\nFrom: Ann <ann@example.org>\r\n\
                        Subject: Release 1.0\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n";

    #[test]
    fn a_list_copy_and_a_direct_copy_of_one_post_differ_and_copies_do_not() {
        let direct = format!(
            "Received: from mx.example.org by mail.acme.com;\r\n\tMon, 1 Jan 2024 10:00:02 +0000\r\n{POST}\r\nbody\r\n"
        );
        let list = format!(
            "Received: from lists.example by mail.acme.com; Mon, 1 Jan 2024 10:00:09 +0000\r\n\
             Received: from mx.example.org by lists.example; Mon, 1 Jan 2024 10:00:03 +0000\r\n\
             {POST}List-Id: <dev.lists.example>\r\n\r\nbody\r\n-- \r\nfooter\r\n"
        );
        let a = identity(&parse_headers(direct.as_bytes()), 1);
        let b = identity(&parse_headers(list.as_bytes()), 2);
        assert_ne!(a, b);
        assert_eq!(base(&a), "mid:post-1@lists.example");
        assert_eq!(base(&a), base(&b));
        // The same bytes give the same identity whatever the size or line ends a store reports,
        // and folding or extra blanks in a field do not matter.
        let lf = direct.replace("\r\n", "\n");
        assert_eq!(identity(&parse_headers(lf.as_bytes()), 99), a);
        let refolded = direct.replace(";\r\n\tMon", ";\r\n   Mon");
        assert_eq!(identity(&parse_headers(refolded.as_bytes()), 1), a);
        // Domino's rewritten domain still gives one identity.
        let local = format!(
            "Message-ID: <OF6E3A1B2C.4D5E6F70-ON85257A1B.0012ABCD@LocalDomain>\r\n{}",
            &POST[POST.find("From").unwrap_or(0)..]
        );
        let routed = local.replace("@LocalDomain", "@acme.com");
        assert_eq!(
            identity(&parse_headers(local.as_bytes()), 1),
            identity(&parse_headers(routed.as_bytes()), 1)
        );
        // Identities recorded before variants are their own base.
        assert_eq!(base("mid:a@b"), "mid:a@b");
        assert_eq!(base("mid:a#b@c"), "mid:a#b@c");
    }
}
