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

/// Whether an internet address may be written to a destination (a `proxyAddresses` value, a
/// `mail`): why not, when it may not. Stricter than [`is_smtp`], which only tells an address
/// from a Notes name: a local part of letters, digits and RFC 5322's other atom characters with
/// single dots between them, but no `*` (Exchange and Domino read it as a wildcard); a domain of
/// dot-separated labels of letters, digits and `-`; no white space or control characters
/// anywhere; at most 64 bytes before the `@` and 254 in all (RFC 5321). Letters may be any
/// alphabet's (internationalised addresses).
pub fn check_smtp(s: &str) -> Result<(), &'static str> {
    if s.chars().any(char::is_control) {
        return Err("it holds a control character");
    }
    if s.chars().any(char::is_whitespace) {
        return Err("it holds white space");
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Err("it has no `@`");
    };
    if local.is_empty() {
        return Err("nothing comes before the `@`");
    }
    if domain.is_empty() {
        return Err("nothing comes after the `@`");
    }
    if s.len() > 254 {
        return Err("it is longer than 254 bytes");
    }
    if local.len() > 64 {
        return Err("the part before the `@` is longer than 64 bytes");
    }
    if local.contains('*') {
        return Err("`*` is a wildcard, not part of an address");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("the part before the `@` starts or ends with a dot, or has two in a row");
    }
    let atom = |c: char| c.is_alphanumeric() || "!#$%&'+-/=?^_`{|}~.".contains(c);
    if !local.chars().all(atom) {
        return Err("the part before the `@` holds a character an address cannot have");
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err("the domain has an empty label (a dot at an end, or two in a row)");
        }
        if label.len() > 63 {
            return Err("a label of the domain is longer than 63 bytes");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label of the domain starts or ends with `-`");
        }
        if !label.chars().all(|c| c.is_alphanumeric() || c == '-') {
            return Err("the domain holds a character a domain name cannot have");
        }
    }
    Ok(())
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
    fn addresses_written_to_a_destination_are_checked() {
        for ok in [
            "john.smith@acme.com",
            "o'brien+tag@sub.acme-corp.example",
            "jürgen@bäckerei.example",
            "a@b",
            "x_y{z}=1@acme.com",
        ] {
            assert_eq!(check_smtp(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("*@acme.com", "wildcard"),
            ("a*b@acme.com", "wildcard"),
            ("a b@acme.com", "white space"),
            ("a\u{1}b@acme.com", "control"),
            ("a@acme.com\n", "control"),
            ("acme.com", "no `@`"),
            ("@acme.com", "before"),
            ("a@", "after"),
            (".a@acme.com", "dot"),
            ("a..b@acme.com", "dot"),
            ("a@acme..com", "empty label"),
            ("a@acme.com.", "empty label"),
            ("a@-acme.com", "`-`"),
            ("a@ac_me.com", "domain holds"),
            ("\"a b\"@acme.com", "white space"),
            ("a(b)@acme.com", "cannot have"),
        ] {
            let e = check_smtp(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(check_smtp(&format!("{}@acme.com", "a".repeat(65))).is_err());
        assert!(check_smtp(&format!("a@{}.com", "b".repeat(64))).is_err());
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
