//! Contacts: read a person's Zimbra-format CSV, convert each row to a vCard, and write vCards to a
//! CardDAV address book or to a folder of `.vcf` files.
//!
//! The contract with the rest of the program:
//! - [`read_csv`] gives the contacts sorted by identity, and every bad row as a [`BadItem`]
//!   (`path:line` and why); it fails only when the file cannot be read at all.
//! - A contact's `identity` is stable across runs: its first e-mail address, lowercased
//!   (`email:jdoe@example.com`), else its name and company (`name:john doe;company:acme`). Its UID
//!   ([`contact_uid`]) is a UUID derived from the identity, so a rerun addresses the same
//!   resource even when other fields changed.
//! - [`to_vcard`] writes vCard 4.0 or 3.0; [`VcardObject`] carries the text, UID and digest to a
//!   [`ContactStore`], whose `list`/`put` behave exactly like the calendar stores' (WebDAV
//!   preconditions, [`PutOutcome`]). `identities` also says which identities the destination
//!   already holds under any UID ([`vcard_identities`]: every e-mail address, and the name with
//!   the company), so contacts that another tool or an earlier import created are not copied
//!   again.
//!
//! Nothing here decides what to copy or records what was copied.

pub mod csv;
pub mod vcard;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::items::BadItem;
pub use crate::items::dav::DavConfig;
use crate::items::dav::{CollectionKind, DavCollection, DavError};
pub use crate::items::store::PutOutcome;
use crate::items::store::first_uid;
use crate::items::store::{FileCollection, line_name, line_value, sha256_hex, unfold};

/// One contact row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Stable identity: normalised e-mail, else name and company.
    pub identity: String,
    /// Zimbra CSV header → value; empty values are left out.
    pub fields: BTreeMap<String, String>,
    /// The row's line in the file (1-based; the header is line 1).
    pub line: usize,
}

/// Which vCard to write: 4.0 by default, 3.0 for servers that only take that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VcardVersion {
    V3,
    #[default]
    V4,
}

/// A contact ready for a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcardObject {
    pub uid: String,
    pub vcf: String,
    /// SHA-256 of `vcf`, hex.
    pub digest: String,
}

impl VcardObject {
    pub fn new(contact: &Contact, version: VcardVersion) -> Self {
        let uid = contact_uid(contact);
        let vcf = vcard::write(contact, &uid, version);
        let digest = sha256_hex(vcf.as_bytes());
        VcardObject { uid, vcf, digest }
    }
}

/// Why contacts could not be read or written at all (bad rows are [`BadItem`]s instead).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ContactsError {
    #[error("cannot read contacts file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write vCard folder `{path}`: {message}")]
    Folder { path: PathBuf, message: String },
    /// The folder refused this one item (its file holds another item).
    #[error("{message}")]
    Refused { message: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Dav(#[from] DavError),
}

impl ContactsError {
    /// Whether only the item was refused by the destination (see
    /// [`DavError::is_item_rejected`]): report it as a bad item and go on with the next one.
    pub fn is_item_rejected(&self) -> bool {
        match self {
            ContactsError::Refused { .. } => true,
            ContactsError::Dav(e) => e.is_item_rejected(),
            _ => false,
        }
    }
}

/// Reads one person's contacts CSV.
pub fn read_csv(path: &Path) -> Result<(Vec<Contact>, Vec<BadItem>), ContactsError> {
    let bytes = std::fs::read(path).map_err(|source| ContactsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(csv::parse_csv(&bytes, &path.display().to_string()))
}

/// The identity of a row's fields, or `None` when it has no e-mail, name or company.
pub fn identity(fields: &BTreeMap<String, String>) -> Option<String> {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    for k in [
        "email",
        "email2",
        "email3",
        "workEmail1",
        "workEmail2",
        "workEmail3",
    ] {
        if let Some(v) = fields.get(k).filter(|v| !v.trim().is_empty()) {
            return Some(format!("email:{}", norm(v)));
        }
    }
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let name = if get("fullName").is_empty() {
        ["firstName", "middleName", "lastName"]
            .iter()
            .map(|k| get(k))
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        get("fullName").to_string()
    };
    let company = get("company");
    if name.trim().is_empty() && company.trim().is_empty() {
        return None;
    }
    Some(format!("name:{};company:{}", norm(&name), norm(company)))
}

/// Every identity a vCard at the destination can stand for: one per e-mail address, and its
/// name (from N, and from FN) with its company. A contact whose [`Contact::identity`] is among
/// them is already there, even when another tool created it under another UID.
pub fn vcard_identities(vcf: &str) -> Vec<String> {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let mut emails = Vec::new();
    let mut names = Vec::new();
    let mut company = String::new();
    for (_, line) in unfold(vcf) {
        let value = line_value(&line).unwrap_or("");
        match line_name(&line).as_str() {
            "EMAIL" => emails.push(format!("email:{}", norm(&unescape_parts(value)[0]))),
            "N" => {
                let parts = unescape_parts(value);
                let get = |i: usize| parts.get(i).map(String::as_str).unwrap_or("");
                names.push(
                    [get(1), get(2), get(0)]
                        .iter()
                        .filter(|p| !p.is_empty())
                        .copied()
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
            "FN" => names.push(unescape_parts(value).join(";")),
            "ORG" => company = unescape_parts(value)[0].clone(),
            _ => {}
        }
    }
    let mut out = emails;
    for name in names {
        out.push(format!("name:{};company:{}", norm(&name), norm(&company)));
    }
    out.sort();
    out.dedup();
    out
}

/// Splits a vCard value on unescaped `;` and undoes the escapes (`\,` `\;` `\\` `\n`).
fn unescape_parts(value: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        let last = parts.len() - 1;
        match c {
            '\\' => match chars.next() {
                Some('n') | Some('N') => parts[last].push('\n'),
                Some(o) => parts[last].push(o),
                None => {}
            },
            ';' => parts.push(String::new()),
            c => parts[last].push(c),
        }
    }
    parts
}

/// The UID of a contact: a UUID (version 5 layout) from the SHA-256 of its identity.
pub fn contact_uid(contact: &Contact) -> String {
    let hex = sha256_hex(format!("mailplan-contact:{}", contact.identity).as_bytes());
    let mut b: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect();
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The vCard text of a contact.
pub fn to_vcard(contact: &Contact, version: VcardVersion) -> String {
    vcard::write(contact, &contact_uid(contact), version)
}

/// A contacts destination.
pub trait ContactStore: Send + Sync {
    /// UID → ETag of what the destination holds (empty when the address book does not exist
    /// yet). Never writes.
    fn list(&self) -> impl Future<Output = Result<BTreeMap<String, String>, ContactsError>> + Send;
    /// Identity → UID of every contact the destination holds, by every identity it can stand
    /// for ([`vcard_identities`]), so contacts created by another tool are not copied again.
    /// Never writes.
    fn identities(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, ContactsError>> + Send;
    /// Creates (`existing_etag` `None`) or updates (`If-Match`) one vCard.
    fn put(
        &self,
        card: &VcardObject,
        existing_etag: Option<&str>,
    ) -> impl Future<Output = Result<PutOutcome, ContactsError>> + Send;
}

/// Identity → UID over vCard texts; the first text (in listing order) wins an identity. A card
/// without a UID (another tool's) still stands for its contact, under an empty UID: there is no
/// resource of ours to update, but the contact is there and is not copied again.
fn identity_map<'a>(texts: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for text in texts {
        let uid = first_uid(text).unwrap_or_default();
        for identity in vcard_identities(text) {
            out.entry(identity).or_insert_with(|| uid.clone());
        }
    }
    out
}

/// A folder with one `.vcf` file per contact, named by its UID
/// ([`crate::items::store::resource_name`]), written atomically.
#[derive(Debug, Clone)]
pub struct VcardFolder {
    files: FileCollection,
}

impl VcardFolder {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        VcardFolder {
            files: FileCollection::new(dir, "vcf"),
        }
    }
}

fn folder_error(path: &Path, e: impl std::fmt::Display) -> ContactsError {
    ContactsError::Folder {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A write's I/O error: the item's own refusal, or the folder's failure.
fn put_error(path: &Path, e: std::io::Error) -> ContactsError {
    if e.kind() == std::io::ErrorKind::AlreadyExists {
        ContactsError::Refused {
            message: e.to_string(),
        }
    } else {
        folder_error(path, e)
    }
}

impl ContactStore for VcardFolder {
    async fn list(&self) -> Result<BTreeMap<String, String>, ContactsError> {
        let files = self.files.clone();
        tokio::task::spawn_blocking(move || files.list())
            .await
            .map_err(|e| folder_error(self.files.dir(), e))?
            .map_err(|e| folder_error(self.files.dir(), e))
    }

    async fn identities(&self) -> Result<BTreeMap<String, String>, ContactsError> {
        let files = self.files.clone();
        let list = tokio::task::spawn_blocking(move || files.files())
            .await
            .map_err(|e| folder_error(self.files.dir(), e))?
            .map_err(|e| folder_error(self.files.dir(), e))?;
        Ok(identity_map(list.iter().map(|(_, _, text)| text.as_str())))
    }

    async fn put(
        &self,
        card: &VcardObject,
        existing_etag: Option<&str>,
    ) -> Result<PutOutcome, ContactsError> {
        let files = self.files.clone();
        let (uid, text, etag) = (
            card.uid.clone(),
            card.vcf.clone(),
            existing_etag.map(str::to_string),
        );
        tokio::task::spawn_blocking(move || files.put(&uid, &text, etag.as_deref()))
            .await
            .map_err(|e| folder_error(self.files.dir(), e))?
            .map_err(|e| put_error(self.files.dir(), e))
    }
}

/// A CardDAV address book. A missing one is created (extended MKCOL) on the first put.
#[derive(Debug)]
pub struct CardDav {
    dav: DavCollection,
    version: VcardVersion,
}

impl CardDav {
    pub fn new(config: &DavConfig, version: VcardVersion) -> Result<Self, ContactsError> {
        Ok(CardDav {
            dav: DavCollection::new(config, CollectionKind::AddressBook)?,
            version,
        })
    }

    /// The vCard version this address book is written with.
    pub fn version(&self) -> VcardVersion {
        self.version
    }

    /// Asks the server which vCard versions it takes and switches to 3.0 when it says it takes
    /// 3.0 but not 4.0; a server that says nothing (Radicale) keeps the configured version.
    /// Returns the version in use.
    pub async fn negotiate_version(&mut self) -> Result<VcardVersion, ContactsError> {
        let versions = self.dav.supported_address_versions().await?;
        let has = |v: &str| versions.iter().any(|x| x == v);
        if has("3.0") && !has("4.0") {
            self.version = VcardVersion::V3;
        } else if has("4.0") && !has("3.0") {
            self.version = VcardVersion::V4;
        }
        Ok(self.version)
    }
}

impl ContactStore for CardDav {
    async fn list(&self) -> Result<BTreeMap<String, String>, ContactsError> {
        Ok(self.dav.list().await?)
    }

    async fn identities(&self) -> Result<BTreeMap<String, String>, ContactsError> {
        let resources = self.dav.resources().await?;
        Ok(identity_map(resources.iter().map(|r| r.data.as_str())))
    }

    async fn put(
        &self,
        card: &VcardObject,
        existing_etag: Option<&str>,
    ) -> Result<PutOutcome, ContactsError> {
        Ok(self.dav.put(&card.uid, &card.vcf, existing_etag).await?)
    }
}
