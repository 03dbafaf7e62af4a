//! E-mail and proxy addresses: `SMTP:john@acme.com`, `NOTES:John Smith/Sales/Acme@ACME`, `X500:/o=…`.
//!
//! The address type compares case-insensitively; an upper-case type marks the primary address of
//! that type. Matching compares addresses through `key()`, which folds case of the whole address
//! (SMTP local parts are case-insensitive in every mail system mailplan targets, and Notes names
//! are too). This module must not decide which attributes hold addresses.

use std::fmt;

/// A typed proxy address, as Exchange stores it in `proxyAddresses`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProxyAddress {
    /// The type, upper-cased: `SMTP`, `NOTES`, `X500`, `X400`, ….
    pub kind: String,
    pub address: String,
    pub primary: bool,
}

impl ProxyAddress {
    /// Parses `TYPE:address`. A value without a type prefix is taken as an SMTP address when it
    /// looks like one (the `mail` attribute holds bare addresses).
    pub fn parse(value: &str) -> Option<Self> {
        match split(value)? {
            (Some(kind), address) => Some(ProxyAddress {
                kind: kind.to_ascii_uppercase(),
                address: address.to_string(),
                primary: kind.chars().any(|c| c.is_ascii_uppercase())
                    && !kind.chars().any(|c| c.is_ascii_lowercase()),
            }),
            (None, address) => Some(ProxyAddress::smtp(address, false)),
        }
    }

    /// `parse(value)?.key()`, without making the address first: indexing a directory takes
    /// the key of every address it holds.
    pub fn key_of(value: &str) -> Option<String> {
        let mut key = String::new();
        Self::push_key_of(&mut key, value).then_some(key)
    }

    /// `key_of`, written into `out` (cleared first); false when `value` is no address. Indexing
    /// a directory makes a key for every address it holds, in one buffer.
    pub fn push_key_of(out: &mut String, value: &str) -> bool {
        out.clear();
        let Some((kind, address)) = split(value) else {
            return false;
        };
        push_address_key(out, kind.unwrap_or("SMTP"), address);
        true
    }

    pub fn smtp(address: &str, primary: bool) -> Self {
        ProxyAddress {
            kind: "SMTP".into(),
            address: address.to_string(),
            primary,
        }
    }

    pub fn notes(address: &str, primary: bool) -> Self {
        ProxyAddress {
            kind: "NOTES".into(),
            address: address.to_string(),
            primary,
        }
    }

    pub fn x500(address: &str) -> Self {
        ProxyAddress {
            kind: "X500".into(),
            address: address.to_string(),
            primary: false,
        }
    }

    pub fn is_smtp(&self) -> bool {
        self.kind == "SMTP"
    }

    /// The comparison key: `smtp:john@acme.com`, case folded.
    pub fn key(&self) -> String {
        address_key(&self.kind, &self.address)
    }

    /// The same address with another primary flag.
    pub fn with_primary(&self, primary: bool) -> Self {
        ProxyAddress {
            primary,
            ..self.clone()
        }
    }
}

/// A stored address value as its type (none for a bare internet address) and address.
fn split(value: &str) -> Option<(Option<&str>, &str)> {
    let value = value.trim();
    if let Some((kind, address)) = value.split_once(':') {
        let typed = !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphanumeric());
        if typed && !address.is_empty() {
            return Some((Some(kind), address));
        }
    }
    is_smtp(value).then_some((None, value))
}

/// The comparison key of an address of a type.
pub fn address_key(kind: &str, address: &str) -> String {
    let mut key = String::with_capacity(kind.len() + address.len() + 1);
    push_address_key(&mut key, kind, address);
    key
}

/// `address_key`, appended to `out`.
pub fn push_address_key(out: &mut String, kind: &str, address: &str) {
    let from = out.len();
    out.push_str(kind);
    out[from..].make_ascii_lowercase();
    out.push(':');
    super::push_lowercase(out, address.trim());
}

/// The value as stored in `proxyAddresses`: upper-case type for a primary, lower-case otherwise.
impl fmt::Display for ProxyAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.primary {
            write!(f, "{}:{}", self.kind, self.address)
        } else {
            write!(f, "{}:{}", self.kind.to_ascii_lowercase(), self.address)
        }
    }
}

/// A plausible internet address: one `@`, a non-empty local part, a domain with a dot or a
/// single label, no spaces. Deliberately lenient: directories hold what they hold.
pub fn is_smtp(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '<' || c == '>')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

/// The domain of an SMTP address, lower-cased.
pub fn smtp_domain(s: &str) -> Option<String> {
    s.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_stored_values_are_the_keys_of_their_addresses() {
        for v in [
            "SMTP:John.Smith@Acme.COM",
            "smtp:john@acme.com",
            " SMTP: Jöhn@Ácme.com ",
            "X500:/o=Acme/ou=Sales/cn=Recipients/cn=jsmith",
            "NOTES:John Smith/Sales/Acme@ACME",
            "John.Smith@Acme.com",
            "no address",
            "SMTP:",
            ":john@acme.com",
            "",
        ] {
            assert_eq!(
                ProxyAddress::key_of(v),
                ProxyAddress::parse(v).map(|p| p.key()),
                "{v:?}"
            );
        }
        assert_eq!(address_key("SMTP", " A@B.com"), "smtp:a@b.com");
        assert_eq!(address_key("smtp", "Ä@B.com"), "smtp:ä@b.com");
    }

    #[test]
    fn parses_typed_and_bare_addresses() {
        let p = ProxyAddress::parse("SMTP:John@Acme.com").unwrap();
        assert!(p.primary && p.is_smtp());
        assert_eq!(p.key(), "smtp:john@acme.com");
        let s = ProxyAddress::parse("smtp:alias@acme.com").unwrap();
        assert!(!s.primary);
        assert_eq!(s.to_string(), "smtp:alias@acme.com");
        let n = ProxyAddress::parse("NOTES:John Smith/Sales/Acme@ACME").unwrap();
        assert_eq!(n.kind, "NOTES");
        assert_eq!(n.key(), "notes:john smith/sales/acme@acme");
        let bare = ProxyAddress::parse("jane@acme.com").unwrap();
        assert!(bare.is_smtp() && !bare.primary);
        assert!(ProxyAddress::parse("not an address").is_none());
        assert_eq!(
            ProxyAddress::parse("X500:/o=Acme/cn=x").unwrap().kind,
            "X500"
        );
    }

    #[test]
    fn smtp_shape() {
        assert!(is_smtp("a@b.c"));
        assert!(!is_smtp("John Smith/Sales/Acme@ACME"));
        assert!(!is_smtp("@b.c"));
        assert!(!is_smtp("a b@c.d"));
        assert_eq!(smtp_domain("a@Acme.COM").as_deref(), Some("acme.com"));
    }
}
