//! Writes a contact as a vCard 4.0 (RFC 6350) or 3.0 (RFC 2426).
//!
//! Written by hand: the output is a handful of properties, and doing it here keeps escaping
//! (`\\`, `,`, `;`, newlines) and folding (75 octets, never inside a UTF-8 character) under test
//! rather than behind a crate's defaults. Zimbra fields without a vCard property are kept as
//! `X-ZIMBRA-<FIELD>` so nothing the person had is lost. Output is deterministic: the same
//! contact gives the same bytes.

use std::collections::BTreeMap;

use super::{Contact, VcardVersion};

/// Fields that make up N and FN.
const NAME_FIELDS: [&str; 6] = [
    "firstName",
    "lastName",
    "middleName",
    "namePrefix",
    "nameSuffix",
    "fullName",
];

/// Telephone fields: Zimbra name, vCard 4.0 TYPE, vCard 3.0 TYPE.
const PHONES: [(&str, &str, &str); 14] = [
    ("mobilePhone", "cell", "CELL"),
    ("workPhone", "work,voice", "WORK,VOICE"),
    ("workPhone2", "work,voice", "WORK,VOICE"),
    ("companyPhone", "work,voice", "WORK,VOICE"),
    ("homePhone", "home,voice", "HOME,VOICE"),
    ("homePhone2", "home,voice", "HOME,VOICE"),
    ("otherPhone", "voice", "VOICE"),
    ("carPhone", "voice", "CAR"),
    ("callbackPhone", "voice", "VOICE"),
    ("assistantPhone", "voice", "VOICE"),
    ("workFax", "work,fax", "WORK,FAX"),
    ("homeFax", "home,fax", "HOME,FAX"),
    ("otherFax", "fax", "FAX"),
    ("pager", "pager", "PAGER"),
];

/// E-mail fields: Zimbra name and TYPE (empty: none).
const EMAILS: [(&str, &str); 6] = [
    ("email", ""),
    ("email2", ""),
    ("email3", ""),
    ("workEmail1", "work"),
    ("workEmail2", "work"),
    ("workEmail3", "work"),
];

/// Address field prefixes and their TYPE.
const ADDRESSES: [(&str, &str); 3] = [("work", "work"), ("home", "home"), ("other", "")];
const ADDRESS_PARTS: [&str; 5] = ["Street", "City", "State", "PostalCode", "Country"];

const URLS: [(&str, &str); 3] = [("workURL", "work"), ("homeURL", "home"), ("otherURL", "")];

/// Single-valued text fields: Zimbra name, property.
const TEXTS: [(&str, &str); 3] = [
    ("jobTitle", "TITLE"),
    ("nickname", "NICKNAME"),
    ("notes", "NOTE"),
];

/// The person's display name, as FN wants it (never empty for a contact that has an identity).
pub fn display_name(fields: &BTreeMap<String, String>) -> String {
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    if !get("fullName").is_empty() {
        return get("fullName").to_string();
    }
    let joined = [
        "namePrefix",
        "firstName",
        "middleName",
        "lastName",
        "nameSuffix",
    ]
    .iter()
    .map(|k| get(k))
    .filter(|v| !v.is_empty())
    .collect::<Vec<_>>()
    .join(" ");
    if !joined.is_empty() {
        return joined;
    }
    for k in [
        "nickname",
        "company",
        "email",
        "email2",
        "email3",
        "workEmail1",
    ] {
        if !get(k).is_empty() {
            return get(k).to_string();
        }
    }
    String::new()
}

/// Escapes a TEXT value (RFC 6350 3.4): backslash, comma, semicolon, newline. Other control
/// characters are not allowed in a vCard and are dropped.
pub fn escape(value: &str) -> String {
    let value = value.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push('\t'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends one content line, folded so that no physical line is longer than 75 octets; a fold
/// never splits a UTF-8 character. Lines end with CRLF.
pub fn push_folded(out: &mut String, line: &str) {
    for physical in crate::items::store::fold(line) {
        out.push_str(&physical);
        out.push_str("\r\n");
    }
}

/// The vCard text of a contact, with its UID.
pub fn write(contact: &Contact, uid: &str, version: VcardVersion) -> String {
    let v4 = version == VcardVersion::V4;
    let f = &contact.fields;
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let mut lines: Vec<String> = Vec::new();
    let type_param = |t: &str, t3: &str| -> String {
        let t = if v4 { t } else { t3 };
        if t.is_empty() {
            String::new()
        } else {
            format!(";TYPE={t}")
        }
    };

    lines.push(format!("VERSION:{}", if v4 { "4.0" } else { "3.0" }));
    lines.push(format!(
        "UID:{}",
        if v4 {
            format!("urn:uuid:{uid}")
        } else {
            uid.to_string()
        }
    ));
    lines.push(format!("FN:{}", escape(&display_name(f))));
    let n: Vec<String> = [
        "lastName",
        "firstName",
        "middleName",
        "namePrefix",
        "nameSuffix",
    ]
    .iter()
    .map(|k| escape(get(k)))
    .collect();
    lines.push(format!("N:{}", n.join(";")));
    if !get("company").is_empty() || !get("department").is_empty() {
        let org = if get("department").is_empty() {
            escape(get("company"))
        } else {
            format!("{};{}", escape(get("company")), escape(get("department")))
        };
        lines.push(format!("ORG:{org}"));
    }
    for (field, prop) in TEXTS {
        if !get(field).is_empty() {
            lines.push(format!("{prop}:{}", escape(get(field))));
        }
    }
    let mut first_email = true;
    for (field, t) in EMAILS {
        if get(field).is_empty() {
            continue;
        }
        let params = if v4 {
            let mut p = type_param(t, "");
            if first_email {
                p.push_str(";PREF=1");
            }
            p
        } else {
            let mut types = vec!["INTERNET".to_string()];
            if !t.is_empty() {
                types.push(t.to_ascii_uppercase());
            }
            if first_email {
                types.push("PREF".into());
            }
            format!(";TYPE={}", types.join(","))
        };
        first_email = false;
        lines.push(format!("EMAIL{params}:{}", escape(get(field))));
    }
    for (field, t4, t3) in PHONES {
        if !get(field).is_empty() {
            lines.push(format!("TEL{}:{}", type_param(t4, t3), escape(get(field))));
        }
    }
    for (prefix, t) in ADDRESSES {
        let parts: Vec<String> = ADDRESS_PARTS
            .iter()
            .map(|p| escape(get(&format!("{prefix}{p}"))))
            .collect();
        if parts.iter().all(String::is_empty) {
            continue;
        }
        let t3 = t.to_ascii_uppercase();
        lines.push(format!("ADR{}:;;{}", type_param(t, &t3), parts.join(";")));
    }
    for (field, t) in URLS {
        if !get(field).is_empty() {
            let t3 = t.to_ascii_uppercase();
            lines.push(format!("URL{}:{}", type_param(t, &t3), uri(get(field))));
        }
    }
    for (field, prop) in [("birthday", "BDAY"), ("anniversary", "ANNIVERSARY")] {
        let value = get(field);
        if value.is_empty() {
            continue;
        }
        let prop = if !v4 && prop == "ANNIVERSARY" {
            "X-ANNIVERSARY"
        } else {
            prop
        };
        match date(value) {
            Some((y, m, d)) if v4 => lines.push(format!("{prop}:{y}{m}{d}")),
            Some((y, m, d)) => lines.push(format!("{prop}:{y}-{m}-{d}")),
            None if v4 => lines.push(format!("{prop};VALUE=text:{}", escape(value))),
            None => lines.push(format!(
                "X-ZIMBRA-{}:{}",
                field.to_ascii_uppercase(),
                escape(value)
            )),
        }
    }
    let known = |k: &str| {
        NAME_FIELDS.contains(&k)
            || ["company", "department", "birthday", "anniversary"].contains(&k)
            || TEXTS.iter().any(|(f, _)| *f == k)
            || EMAILS.iter().any(|(f, _)| *f == k)
            || PHONES.iter().any(|(f, _, _)| *f == k)
            || URLS.iter().any(|(f, _)| *f == k)
            || ADDRESSES
                .iter()
                .any(|(p, _)| ADDRESS_PARTS.iter().any(|part| format!("{p}{part}") == k))
    };
    for (k, v) in f {
        if known(k) {
            continue;
        }
        let name: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '-'
                }
            })
            .collect();
        lines.push(format!("X-ZIMBRA-{name}:{}", escape(v)));
    }

    let mut out = String::from("BEGIN:VCARD\r\n");
    for l in lines {
        push_folded(&mut out, &l);
    }
    out.push_str("END:VCARD\r\n");
    out
}

/// A URI value. URL is not TEXT, so backslash escapes would be read as part of the address by
/// some servers, while others (vobject, in Radicale) split an unescaped comma as a list and keep
/// only the first part. A percent-encoded comma means the same to a web server and survives both.
fn uri(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| match c {
            ',' => "%2C".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A Zimbra date (`1980-01-15`, or `19800115`) as year, month, day.
fn date(value: &str) -> Option<(String, String, String)> {
    let digits: String = value.chars().filter(|c| *c != '-').collect();
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if value.contains('-') && !(value.len() == 10 && &value[4..5] == "-" && &value[7..8] == "-") {
        return None;
    }
    let (y, m, d) = (&digits[0..4], &digits[4..6], &digits[6..8]);
    let (mn, dn) = (m.parse::<u32>().ok()?, d.parse::<u32>().ok()?);
    if !(1..=12).contains(&mn) || !(1..=31).contains(&dn) {
        return None;
    }
    Some((y.to_string(), m.to_string(), d.to_string()))
}
