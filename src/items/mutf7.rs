//! Modified UTF-7 (RFC 3501 §5.1.3): how IMAP names folders on the wire, and how Dovecot and
//! other Maildir++ stores name folder directories on disk.
//!
//! Pure conversions only. Decoding is strict: a name that is not valid modified UTF-7 is an
//! error, so a folder is never silently renamed. That includes printable ASCII written in
//! base64 (`&AC4-` for `.`, `&AC8-` for `/`), which RFC 3501 forbids and which would otherwise
//! smuggle a separator or `..` past every check made on the encoded name.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encodes a Unicode folder name.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Decodes a modified UTF-7 folder name; `None` when it is malformed.
pub fn decode(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find('-')?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let mut bits: u32 = 0;
            let mut nbits = 0;
            let mut bytes = Vec::new();
            for b in encoded.bytes() {
                let v = ALPHABET.iter().position(|&a| a == b)? as u32;
                bits = (bits << 6) | v;
                nbits += 6;
                if nbits >= 8 {
                    nbits -= 8;
                    bytes.push((bits >> nbits) as u8);
                    bits &= (1 << nbits) - 1;
                }
            }
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            let text = String::from_utf16(&units).ok()?;
            if text.chars().any(|c| (' '..='~').contains(&c)) {
                return None;
            }
            out.push_str(&text);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc_examples() {
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Some("~peter/mail/台北/日本語")
        );
        assert_eq!(encode("Fax & Scan"), "Fax &- Scan");
        assert_eq!(decode("Fax &- Scan").as_deref(), Some("Fax & Scan"));
        for s in [
            "Entwürfe",
            "Gesendete Objekte",
            "Корзина",
            "emoji 📬 box",
            "plain",
        ] {
            assert_eq!(decode(&encode(s)).as_deref(), Some(s));
        }
        assert_eq!(decode("&ZeVnLIqe"), None);
        assert_eq!(decode("&Jjo!-"), None);
        // `.` and `/` in base64 are not modified UTF-7.
        assert_eq!(decode("&AC4-&AC4-"), None);
        assert_eq!(decode("&AC8-"), None);
        assert_eq!(decode("a&AC4-b"), None);
    }
}
