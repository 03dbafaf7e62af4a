//! The validated plan file: what matching and planning read.
//!
//! Every value here has already been checked (DNs parsed, filters parsed, attribute names checked,
//! templates parsed), so consumers never re-validate. Spans are kept on the values that can only
//! be checked later against a directory (pins), so those errors can still point at the plan file.
//! This module holds data only: no parsing, and no I/O except `Secret::resolve`, which reads a
//! secret at the moment it is needed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use miette::SourceSpan;

use crate::directory::{AttrName, Dn, Filter};

/// A whole, validated plan file.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The plan file as given on the command line.
    pub path: PathBuf,
    /// The plan file's text (for diagnostics and fingerprints).
    pub text: String,
    pub source: Source,
    pub destination: Destination,
    pub matching: Matching,
    pub merge: Merge,
    pub distribution_lists: Option<DistributionLists>,
    /// Items to copy into each mailbox; all `None` when the plan copies none.
    pub items: Items,
    pub safety: Safety,
    /// Where the state is kept: `None` for the SQLite database beside the plan file.
    pub state: Option<PostgresState>,
    /// Every secret the plan file names, where it names it: checked once, before anything
    /// connects (see `spec::check_secrets`).
    pub secrets: Vec<SecretUse>,
    /// Every attribute placeholder of every template, in file order.
    pub placeholders: Vec<Placeholder>,
}

/// The most objects one apply may delete when the plan file does not say: Azure AD Connect's
/// default for its accidental-delete prevention, a number directory administrators know. A
/// wave that replaces contacts deletes one per person (scenarios 3 and 4), so a smaller default
/// would stop ordinary waves; a wrong filter or classification deletes thousands, and is
/// stopped.
pub const DEFAULT_MAX_DELETES: u64 = 500;

/// Limits that keep a wrong plan from doing large damage (`safety:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Safety {
    /// The most destination objects one apply may delete.
    pub max_deletes: u64,
    /// Where `safety.max_deletes` is written; `None` for the default.
    pub max_deletes_span: Option<SourceSpan>,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            max_deletes: DEFAULT_MAX_DELETES,
            max_deletes_span: None,
        }
    }
}

/// One `{attribute}` placeholder of a template, where the plan file writes it: checked against
/// the source (see `spec::check_against`), so a misspelt name is not an empty value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub attribute: AttrName,
    /// The key whose template holds it (`destination.mapping.title`).
    pub key: String,
    /// Where `{attribute}` is written (the whole value when it cannot be pointed at).
    pub span: SourceSpan,
}

/// A PostgreSQL database as the state (`state: postgres:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresState {
    /// The URL as written (checked: it parses, and holds no password).
    pub url: String,
    pub password: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
}

/// One place a plan file names a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretUse {
    pub secret: Secret,
    /// The key that holds it (`items.mail.source.imap.password`).
    pub key: String,
    /// Where its `env:` or `file:` value is written.
    pub span: SourceSpan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Profile {
    Domino,
    Ldap,
    ActiveDirectory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flavor {
    ActiveDirectory,
    Ldap,
    Carbonio,
}

/// Where a directory is read from. Paths are already resolved against the plan file's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectorySource {
    Ldif(PathBuf),
    Ldap(LdapSettings),
}

/// A live LDAP directory: how to connect, bind and search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapSettings {
    /// `ldap://…`, `ldaps://…` or `ldapi://…`, as written.
    pub url: String,
    /// A DN or a userPrincipalName; `None` binds anonymously.
    pub bind_dn: Option<String>,
    pub password: Option<Secret>,
    pub base: Dn,
    /// Sent to the server as written (it was checked to be a valid RFC 4515 filter).
    pub filter: String,
    pub scope: LdapScope,
    pub page_size: u32,
    pub timeout: std::time::Duration,
    pub starttls: bool,
    /// Already resolved against the plan file's folder.
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
    /// Bind with SASL EXTERNAL instead of a simple bind.
    pub sasl_external: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdapScope {
    Base,
    One,
    Sub,
}

#[derive(Debug, Clone)]
pub struct Source {
    pub profile: Profile,
    /// The Notes domain (`ACME`), used to build `NOTES:` addresses; `None` means no NOTES
    /// addresses are built.
    pub notes_domain: Option<String>,
    pub directory: DirectorySource,
    /// `allow_file_urls: true` beside `ldif:`: `:< file:` values are read (from the LDIF's
    /// folder only).
    pub ldif_file_urls: bool,
    /// Only entries at or below this DN are in the wave.
    pub base: Option<Dn>,
    /// Which entries are persons; `None` means the profile's default.
    pub filter: Option<Filter>,
    /// When non-empty, only these persons are in the wave.
    pub include: Vec<Dn>,
    /// These persons are never in the wave.
    pub exclude: Vec<Dn>,
    pub roles: Roles,
    /// Not from the plan file: when non-empty, only these persons of the wave are planned
    /// (`--target`), with what their actions need and without distribution lists.
    pub targets: Vec<Dn>,
}

/// Per-role attribute overrides; `None` keeps the profile's default for that role.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    pub smtp: Option<Vec<AttrName>>,
    pub short_names: Option<Vec<AttrName>>,
    pub full_names: Option<Vec<AttrName>>,
    pub given_name: Option<AttrName>,
    pub surname: Option<AttrName>,
}

#[derive(Debug, Clone)]
pub struct Destination {
    pub flavor: Flavor,
    pub directory: DirectorySource,
    /// `allow_file_urls: true` beside `ldif:`: `:< file:` values are read (from the LDIF's
    /// folder only).
    pub ldif_file_urls: bool,
    /// Where new objects are created.
    pub container: Dn,
    /// Mail domains that must exist at the destination; the first is the default for
    /// generated addresses.
    pub domains: Vec<String>,
    /// The mailbox database new and converted mailboxes get (`homeMDB`).
    pub mailbox_database: Option<Dn>,
    /// The Exchange organisation name used to build `legacyExchangeDN`.
    pub exchange_org: Option<String>,
    pub classify: Classify,
    /// Attribute mapping for created and converted mailboxes: `Some(template)` sets or overrides,
    /// `None` removes a default.
    pub mapping: BTreeMap<AttrName, Option<Template>>,
    /// What only the `carbonio` flavor has; `None` for the others.
    pub carbonio: Option<Carbonio>,
}

/// A Carbonio destination's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carbonio {
    /// The class of service new accounts get, by name.
    pub cos: String,
    /// The password new accounts get.
    pub password_policy: PasswordPolicy,
    /// How accounts are created; `None` when the plan file does not say (enough to plan, not
    /// to apply).
    pub provisioning: Option<Provisioning>,
    /// With Auto Provisioning: how long apply waits, at most, for the accounts Carbonio is to
    /// create before it gives up importing their items.
    pub auto_wait: std::time::Duration,
}

/// The password a new Carbonio account gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordPolicy {
    /// A random password made at apply time, with `zimbraPasswordMustChange: TRUE`.
    Random,
    /// None: the domain authenticates against an external directory.
    External,
}

/// How Carbonio accounts are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioning {
    /// Through the admin SOAP API.
    Soap(SoapSettings),
    /// By the domains' Accounts Auto Provisioning.
    Auto,
}

/// The connection to Carbonio's admin SOAP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapSettings {
    pub url: String,
    pub user: String,
    pub password: Secret,
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
    /// To connect and for each answer.
    pub timeout: std::time::Duration,
}

/// Classification overrides; `None` keeps the flavor's default rule.
#[derive(Debug, Clone, Default)]
pub struct Classify {
    pub mailbox_user: Option<Filter>,
    pub mail_enabled_user: Option<Filter>,
    pub nt_account: Option<Filter>,
    pub contact: Option<Filter>,
    pub group: Option<Filter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Batch,
    Interactive,
}

/// A DN written in the plan file, with where it was written.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub value: T,
    pub span: SourceSpan,
}

/// A pin from a source person to a destination object.
#[derive(Debug, Clone)]
pub struct Pin {
    pub source: Located<Dn>,
    pub destination: Located<Dn>,
}

#[derive(Debug, Clone)]
pub struct Matching {
    pub mode: Mode,
    /// Soft matches an administrator confirmed.
    pub confirmed: Vec<Pin>,
    /// Remigration targets: migrate this person into this existing mailbox (scenario 6b).
    pub remigrate: Vec<Pin>,
    /// Source persons left out of the wave.
    pub ignore_sources: Vec<Located<Dn>>,
    /// Destination objects never considered as match candidates.
    pub ignore_destinations: Vec<Located<Dn>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergePolicy {
    /// A contact's value is copied only where the mailbox has none.
    FillEmpty,
    /// A contact's value replaces the mailbox's.
    PreferContact,
    /// The mailbox's directory data is kept as it is; contacts give only their addresses.
    PreferDestination,
}

#[derive(Debug, Clone)]
pub struct Merge {
    pub policy: MergePolicy,
    pub attributes: Vec<AttrName>,
}

#[derive(Debug, Clone)]
pub struct DistributionLists {
    /// Which source entries are groups to migrate.
    pub filter: Filter,
    pub include: Vec<Dn>,
    pub exclude: Vec<Dn>,
    /// Where new groups are created; defaults to the destination container.
    pub container: Option<Dn>,
}

/// Which items are copied, from where, to where.
#[derive(Debug, Clone, Default)]
pub struct Items {
    pub mail: Option<MailItems>,
    pub calendars: Option<CalendarItems>,
    pub contacts: Option<ContactItems>,
    /// `connections:`: the most connections all of mailplan may hold to each endpoint
    /// (`host:port`) at once.
    pub connections: BTreeMap<String, u32>,
}

impl Items {
    /// Whether the plan file copies any items at all.
    pub fn any(&self) -> bool {
        self.mail.is_some() || self.calendars.is_some() || self.contacts.is_some()
    }
}

/// A path written as a template; once expanded for a person it is resolved against `base` (the
/// plan file's folder) unless absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    pub template: Template,
    pub base: PathBuf,
}

#[derive(Debug, Clone)]
pub struct MailItems {
    pub source: MailStore,
    pub destination: MailStore,
    pub folders: FolderMapping,
    /// Only messages with an internal date on or after this (seconds since 1970, UTC).
    pub since: Option<i64>,
    /// New mail above this many bytes is queued as one work unit per folder.
    pub unit_per_folder_above: u64,
}

/// `items.mail.unit_per_folder_above` when the plan file does not say: 2 GiB.
pub const UNIT_PER_FOLDER_ABOVE: u64 = 2 << 30;

#[derive(Debug, Clone)]
pub enum MailStore {
    Maildir(PathTemplate),
    Imap(ImapStore),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapAuth {
    Plain,
    Master,
    Login,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapSecurity {
    /// `imaps://`: TLS from the first byte.
    Tls,
    /// `imap://`: STARTTLS before logging in.
    StartTls,
    /// `imap://` with `tls: none`.
    None,
}

#[derive(Debug, Clone)]
pub struct ImapStore {
    pub host: String,
    pub port: u16,
    pub security: ImapSecurity,
    pub user: Template,
    pub login: Option<String>,
    pub password: Secret,
    pub auth: ImapAuth,
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
    /// To connect, for each answer and for each write (see `src/items/mail/imap.rs`).
    pub timeout: std::time::Duration,
}

/// How source folder names become destination names. Names are logical: levels separated by
/// `/`, whatever each store uses on disk or on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderMapping {
    /// Exact source name → destination name (the Notes defaults included).
    pub map: BTreeMap<String, String>,
    /// A character inside source names that separates levels.
    pub separator: Option<char>,
    /// Exact names, or `prefix/*` for a folder and everything below it.
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct CalendarItems {
    pub source: PathTemplate,
    pub destination: CalendarDestination,
}

#[derive(Debug, Clone)]
pub enum CalendarDestination {
    CalDav(DavStore),
    IcsFolder(PathTemplate),
}

#[derive(Debug, Clone)]
pub struct ContactItems {
    pub source: PathTemplate,
    pub destination: ContactDestination,
}

#[derive(Debug, Clone)]
pub enum ContactDestination {
    CardDav(DavStore),
    VcardFolder(PathTemplate),
}

#[derive(Debug, Clone)]
pub struct DavStore {
    pub url: Template,
    pub login: Option<Template>,
    pub password: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
    /// To connect and for each read of an answer.
    pub timeout: std::time::Duration,
    /// 3 or 4.
    pub vcard_version: u8,
}

/// A value template such as `{givenName} {sn}` or `{short_name}@acme.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    /// `{role}`: one of the person's roles (`full_name`, `short_name`, `primary_smtp`,
    /// `notes_address`, `given_name`, `surname`, `sam_account_name`).
    Role(Role),
    /// `{attr}`: the first value of a source attribute.
    Attr(AttrName),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    FullName,
    ShortName,
    PrimarySmtp,
    NotesAddress,
    GivenName,
    Surname,
    SamAccountName,
}

impl Role {
    pub const ALL: [(&'static str, Role); 7] = [
        ("full_name", Role::FullName),
        ("short_name", Role::ShortName),
        ("primary_smtp", Role::PrimarySmtp),
        ("notes_address", Role::NotesAddress),
        ("given_name", Role::GivenName),
        ("surname", Role::Surname),
        ("sam_account_name", Role::SamAccountName),
    ];
}

/// Why a template string is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed `{{` at byte {0}")]
    Unclosed(usize),
    #[error("stray `}}` at byte {0} (write `}}}}` for a literal brace)")]
    Stray(usize),
    #[error("`{{{0}}}` is neither a role ({roles}) nor an attribute name", roles = Role::ALL.iter().map(|r| r.0).collect::<Vec<_>>().join(", "))]
    Unknown(String),
}

impl Template {
    /// Parses `{name}` placeholders; `{{` and `}}` are literal braces.
    pub fn parse(s: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = s.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let rest = &s[i + 1..];
                    let end = rest.find('}').ok_or(TemplateError::Unclosed(i))?;
                    let name = rest[..end].trim();
                    if !lit.is_empty() {
                        parts.push(TemplatePart::Literal(std::mem::take(&mut lit)));
                    }
                    if let Some((_, role)) = Role::ALL.iter().find(|(n, _)| *n == name) {
                        parts.push(TemplatePart::Role(*role));
                    } else {
                        let attr = AttrName::new(name)
                            .map_err(|_| TemplateError::Unknown(name.to_string()))?;
                        parts.push(TemplatePart::Attr(attr));
                    }
                    // Skip to the closing brace.
                    for _ in 0..rest[..=end].chars().count() {
                        chars.next();
                    }
                }
                '}' => return Err(TemplateError::Stray(i)),
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(TemplatePart::Literal(lit));
        }
        Ok(Template { parts })
    }

    /// A template that is just one role.
    pub fn role(role: Role) -> Self {
        Template {
            parts: vec![TemplatePart::Role(role)],
        }
    }

    /// A template that is just one source attribute.
    pub fn attr(name: &str) -> Self {
        Template {
            parts: vec![TemplatePart::Attr(AttrName::new_unchecked(name))],
        }
    }
}

/// Where a secret (a password) is found; the plan file never holds the secret itself.
/// Written `{ env: NAME }` or `{ file: PATH }` (the path already resolved against the plan
/// file's folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Env(String),
    File(PathBuf),
}

/// Why a secret could not be read. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable `{0}` is not set")]
    EnvMissing(String),
    #[error("environment variable `{0}` is not valid Unicode")]
    EnvNotUnicode(String),
    #[error("cannot read secret file `{path}`: {reason}")]
    File { path: PathBuf, reason: String },
}

impl Secret {
    /// Reads the secret now. This is the one piece of I/O in the model, on purpose: a secret is
    /// read only when a connection needs it, so it never sits in a `Spec` or a saved plan. A
    /// file's trailing line break is not part of the secret.
    pub fn resolve(&self) -> Result<String, SecretError> {
        match self {
            Secret::Env(name) => match std::env::var(name) {
                Ok(value) => Ok(value),
                Err(std::env::VarError::NotPresent) => Err(SecretError::EnvMissing(name.clone())),
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(SecretError::EnvNotUnicode(name.clone()))
                }
            },
            Secret::File(path) => {
                let file_error = |reason: String| SecretError::File {
                    path: path.clone(),
                    reason,
                };
                let bytes = std::fs::read(path).map_err(|e| file_error(e.kind().to_string()))?;
                // Not `from_utf8(..)?`: its error would carry the bytes, that is the secret.
                let mut text = String::from_utf8(bytes)
                    .map_err(|_| file_error("it is not UTF-8 text".into()))?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                Ok(text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_roles_attributes_and_braces() {
        let t = Template::parse("{givenName}.{surname}@acme.com {{x}}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                TemplatePart::Attr(AttrName::new_unchecked("givenName")),
                TemplatePart::Literal(".".into()),
                TemplatePart::Role(Role::Surname),
                TemplatePart::Literal("@acme.com {x}".into()),
            ]
        );
        assert_eq!(Template::parse("{oops"), Err(TemplateError::Unclosed(0)));
        assert_eq!(Template::parse("a}"), Err(TemplateError::Stray(1)));
        assert!(matches!(
            Template::parse("{no such}"),
            Err(TemplateError::Unknown(_))
        ));
    }
}
