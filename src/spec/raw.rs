//! The plan file exactly as written: serde and JSON Schema types that mirror the YAML.
//!
//! These types are the single description of the file's shape. serde reads the YAML into them and
//! schemars turns them into `schemas/plan.schema.json`, whose doc comments become the hover text
//! in editors, so every `///` here is written for the person editing a plan.
//!
//! Nothing here is validated beyond its YAML type: DNs, filters, attribute names, templates and
//! domains are kept as text so that `load` can check all of them and report every problem with its
//! location, instead of serde stopping at the first one. For the same reason no struct uses
//! `deny_unknown_fields`: unknown keys are collected by `load` (through `serde_ignored`), while the
//! schema still says `additionalProperties: false` for editors (`#[schemars(deny_unknown_fields)]`).
//! And required keys are `Option`s marked `#[schemars(required)]`: serde would stop a whole
//! section at a missing key, so `load` checks required keys itself, from the schema.
//! This module must not do I/O or build the validated model.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

/// Separates a custom deserialization error's message from its help text. serde only carries a
/// string from a `Deserialize` impl to the caller, so `load` splits on this to give the help its
/// own place in the diagnostic. A control character cannot appear in a message by accident.
pub(crate) const HELP_SEPARATOR: char = '\u{1f}';

/// A mailplan plan file: which people move from which directory to which, and how.
///
/// Paths in the file are relative to the file's own folder.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields, title = "mailplan plan file")]
pub struct Plan {
    /// The plan-file format version. Always `1`.
    #[schemars(required, extend("const" = 1))]
    pub version: Option<u32>,
    /// The directory the people are migrated from.
    #[schemars(required)]
    pub source: Option<Source>,
    /// The directory (and Exchange organisation) the people are migrated to.
    #[schemars(required)]
    pub destination: Option<Destination>,
    /// How source people are paired with destination objects.
    pub matching: Option<Matching>,
    /// How a person's existing contact data is merged into the mailbox that replaces it.
    pub merge: Option<Merge>,
    /// Distribution lists (groups) to migrate alongside the people. Leave out to migrate none.
    pub distribution_lists: Option<DistributionLists>,
    /// Mail, calendars and contacts to copy into each person's destination mailbox. Leave out
    /// to migrate directory data only.
    pub items: Option<Items>,
    /// Limits that keep a wrong plan from doing large damage.
    pub safety: Option<Safety>,
    /// Where mailplan keeps what it did (runs, backups, the ledger of copied items, the lock).
    /// Leave out to keep it in a SQLite database in a folder beside the plan file.
    pub state: Option<State>,
}

/// Limits that keep a wrong plan from doing large damage.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Safety {
    /// The most destination objects one apply may delete; `apply` refuses a plan that deletes
    /// more, before it writes anything. `0` forbids every deletion. Default: 500.
    #[schemars(extend("default" = 500))]
    pub max_deletes: Option<u64>,
}

/// Where the state is kept: one backend.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend("minProperties" = 1, "maxProperties" = 1)
)]
pub struct State {
    /// A PostgreSQL database that every machine working on the wave shares: `apply` queues the
    /// item work there and `mailplan worker` processes on any number of machines take it.
    pub postgres: Option<Postgres>,
}

/// A PostgreSQL database for the state.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Postgres {
    /// `postgres://user@host:port/database`, without a password (give it as `password`).
    /// TLS is required unless the URL says `?sslmode=disable` (only for loopback tests).
    #[schemars(required)]
    pub url: Option<String>,
    /// The database user's password.
    pub password: Option<Secret>,
    /// A PEM file with the CA certificate(s) to trust instead of the system's; a self-signed
    /// server certificate may be given as its own CA.
    pub ca_file: Option<String>,
    /// Skip certificate checks. Never do this outside a lab; mailplan warns every run.
    pub insecure: Option<bool>,
}

/// The directory the people are migrated from.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Source {
    /// What kind of directory this is; it decides which attributes hold names, addresses and
    /// short names, and which entries count as persons.
    #[schemars(required)]
    pub profile: Option<Profile>,
    /// The Notes domain (e.g. `ACME`), used to build `NOTES:` addresses. Leave out to build none.
    pub notes_domain: Option<String>,
    /// Where the source directory is read from.
    #[schemars(required)]
    pub directory: Option<Directory>,
    /// Only entries at or below this DN are considered.
    pub base: Option<DnText>,
    /// Which entries are persons (an LDAP filter). Default: the profile's person filter.
    pub filter: Option<FilterText>,
    /// When given, only these persons (by DN) are in the wave.
    pub include: Option<Vec<DnText>>,
    /// These persons (by DN) are never in the wave.
    pub exclude: Option<Vec<DnText>>,
    /// Per-role attribute overrides; a role left out keeps the profile's default attributes.
    pub roles: Option<Roles>,
}

/// The kind of source directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// A Lotus Domino directory (names.nsf exported or served over LDAP).
    Domino,
    /// A generic LDAP directory (inetOrgPerson).
    Ldap,
    /// An Active Directory forest.
    ActiveDirectory,
}

/// Which attributes hold each role of a person. Every key is optional.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Roles {
    /// Attributes holding SMTP addresses, in order of preference (the first value found is the
    /// primary address).
    pub smtp: Option<Vec<AttrText>>,
    /// Attributes holding short names (Domino `ShortName`, `uid`), used for soft matching and
    /// account names.
    pub short_names: Option<Vec<AttrText>>,
    /// Attributes holding full names, used for soft matching on names.
    pub full_names: Option<Vec<AttrText>>,
    /// The attribute holding the given name.
    pub given_name: Option<AttrText>,
    /// The attribute holding the surname.
    pub surname: Option<AttrText>,
}

/// Where a directory is read from: exactly one backend key (and, beside `ldif`,
/// `allow_file_urls`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend("minProperties" = 1, "maxProperties" = 2)
)]
pub struct Directory {
    /// An LDIF export (RFC 2849) of the directory; relative paths start at the plan file's folder.
    pub ldif: Option<String>,
    /// Read the values this LDIF gives as `attr:< file:URL` from those files (default false:
    /// such a value is an error at its line). Only regular files in the LDIF's folder or below
    /// it are read, of at most 16 MiB each; a URL naming anything else stays an error.
    pub allow_file_urls: Option<bool>,
    /// A live LDAP server (OpenLDAP, Active Directory, Domino LDAP), read with paged searches and,
    /// for a destination, written by `apply`.
    pub ldap: Option<Ldap>,
}

/// How to reach and read a live LDAP directory.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Ldap {
    /// The server: `ldap://host[:port]`, `ldaps://host[:port]`, or a local socket
    /// `ldapi://%2Fpath%2Fto%2Fsocket`.
    #[schemars(required)]
    pub url: Option<String>,
    /// Who to bind as (simple bind): a DN, or on Active Directory a userPrincipalName
    /// (`admin@example.com`). Leave out for an anonymous bind.
    pub bind_dn: Option<String>,
    /// The bind password, from the environment or a file.
    pub password: Option<Secret>,
    /// Where the search starts, e.g. `DC=acme,DC=com`.
    #[schemars(required)]
    pub base: Option<DnText>,
    /// Which entries to read (an LDAP filter, sent to the server). Default: `(objectClass=*)`.
    pub filter: Option<FilterText>,
    /// How deep the search goes below `base`.
    #[schemars(extend("default" = "sub"))]
    pub scope: Option<Scope>,
    /// Entries per page of the paged search (RFC 2696). Active Directory serves at most 1000.
    #[schemars(extend("default" = 500, "minimum" = 1))]
    pub page_size: Option<u32>,
    /// Seconds to wait to connect (TLS and StartTLS included) and for each answer: the bytes of
    /// a search's results must keep coming at least that often. Connecting and binding are tried
    /// again after a timeout.
    #[schemars(extend("default" = 30, "minimum" = 1))]
    pub timeout: Option<u64>,
    /// Upgrade a plain `ldap://` connection with StartTLS before binding.
    #[schemars(extend("default" = false))]
    pub starttls: Option<bool>,
    /// A PEM file with the certificate authority that signed the server's certificate, trusted
    /// instead of the system's (a self-signed server certificate may be given as its own CA);
    /// relative paths start at the plan file's folder.
    pub ca_file: Option<String>,
    /// Bind with SASL instead of a simple bind: `external` uses the identity the connection
    /// already has (the local user on an `ldapi://` socket). Not with `bind_dn`/`password`.
    pub sasl: Option<SaslMechanism>,
    /// Do not verify the server's TLS certificate. Anyone on the network path can then read the
    /// password and the directory; mailplan prints a warning every time.
    #[schemars(extend("default" = false))]
    pub insecure: Option<bool>,
}

/// A SASL mechanism for the bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SaslMechanism {
    /// The identity the transport carries (SASL EXTERNAL, RFC 4422).
    External,
}

/// How deep an LDAP search goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Only the base entry itself.
    Base,
    /// The entries directly below the base.
    One,
    /// The base and everything below it.
    Sub,
}

/// The directory (and Exchange organisation) the people are migrated to.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Destination {
    /// What kind of directory this is.
    #[schemars(required)]
    pub flavor: Option<Flavor>,
    /// Where the destination directory is read from.
    #[schemars(required)]
    pub directory: Option<Directory>,
    /// The container (OU) where new objects are created, e.g. `OU=Migrated,DC=acme,DC=test`.
    /// Required for `active-directory` and `ldap`; `carbonio` places accounts itself (under
    /// `ou=people` of their domain) and takes none.
    pub container: Option<DnText>,
    /// Mail domains that must exist at the destination, e.g. `[acme.com]`; the first is the
    /// default for generated addresses. Each domain only once (case does not matter).
    pub domains: Option<Vec<DomainText>>,
    /// The mailbox database new and converted mailboxes get (`homeMDB`), as a DN.
    pub mailbox_database: Option<DnText>,
    /// The Exchange organisation name, used to build `legacyExchangeDN`.
    pub exchange_org: Option<String>,
    /// Overrides of how destination objects are classified; each is an LDAP filter, and a class
    /// left out keeps the flavor's default rule.
    pub classify: Option<Classify>,
    /// Attribute mapping for created and converted mailboxes: attribute name → template such as
    /// `"{surname}, {given_name}"`, or `null` to drop one of the default mappings.
    pub mapping: Option<BTreeMap<String, Option<TemplateText>>>,
    /// Carbonio only: the server's web address, e.g. `https://mail.acme.com`, written once. Item
    /// destinations left without their own address default to it: CalDAV at
    /// `URL/dav/{primary_smtp}/Calendar/`, CardDAV at `URL/dav/{primary_smtp}/Contacts/`, IMAP at
    /// `imaps://` its host.
    pub url: Option<String>,
    /// Carbonio only: the class of service new accounts get, by name (the `cn` of a `zimbraCOS`
    /// entry), e.g. `default`; it must exist. Default: `default`.
    #[schemars(extend("default" = "default"))]
    pub cos: Option<String>,
    /// Carbonio only: how accounts are created, through the admin SOAP API (`soap:`) or by
    /// Carbonio's Accounts Auto Provisioning (`auto: true`). Needed by `apply`, not by `plan`.
    pub provisioning: Option<Provisioning>,
    /// Carbonio only: the password new accounts get. `random` (the default): a random one that
    /// the user must change at first login (`zimbraPasswordMustChange: TRUE`), made at apply
    /// time and never shown; `external`: none, the domain authenticates elsewhere (LDAP/AD).
    #[schemars(extend("default" = "random"))]
    pub password_policy: Option<PasswordPolicy>,
}

/// The password a new Carbonio account gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PasswordPolicy {
    /// A random password, made at apply time, that must be changed at first login.
    Random,
    /// No password: the domain's external authentication (LDAP or AD) is used.
    External,
}

/// How Carbonio accounts are created: exactly one of `soap` and `auto`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Provisioning {
    /// Carbonio's admin SOAP API: mailplan creates the accounts, aliases and lists.
    pub soap: Option<Soap>,
    /// `true`: the domains' Accounts Auto Provisioning creates the accounts; mailplan shows
    /// what Carbonio will create and creates none itself.
    pub auto: Option<bool>,
    /// With `auto: true`: seconds apply waits, at most, for the accounts Auto Provisioning is
    /// to create before it gives up importing their items (the person is then left out).
    /// Default 960: Carbonio's default EAGER polling interval (15 minutes) and a minute.
    #[schemars(extend("default" = 960, "minimum" = 1))]
    pub wait: Option<u64>,
}

/// The connection to Carbonio's admin SOAP API.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Soap {
    /// The admin SOAP endpoint, e.g. `https://mail.acme.com:7071/service/admin/soap`.
    #[schemars(required)]
    pub url: Option<String>,
    /// The admin account to authenticate as, e.g. `admin@acme.com`.
    #[schemars(required)]
    pub user: Option<String>,
    /// The admin password.
    #[schemars(required)]
    pub password: Option<Secret>,
    /// A PEM file with the CA certificate(s) to trust instead of the system's. Relative paths
    /// start at the plan file's folder.
    pub ca_file: Option<String>,
    /// Skip certificate checks. Never do this outside a lab; mailplan warns every run.
    pub insecure: Option<bool>,
    /// Seconds to wait to connect and for each answer.
    #[schemars(extend("default" = 30, "minimum" = 1))]
    pub timeout: Option<u64>,
}

/// The kind of destination directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    /// Active Directory with Exchange attributes.
    ActiveDirectory,
    /// A generic LDAP directory with mail attributes.
    Ldap,
    /// Carbonio (Zextras, built on Zimbra): accounts, distribution lists, aliases, domains and
    /// classes of service in Carbonio's directory.
    Carbonio,
}

/// Classification rules for destination objects, each an LDAP filter.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Classify {
    /// Users that have a mailbox.
    pub mailbox_user: Option<FilterText>,
    /// Users with an external e-mail address but no mailbox.
    pub mail_enabled_user: Option<FilterText>,
    /// Users with an account but no mail at all.
    pub nt_account: Option<FilterText>,
    /// Mail contacts.
    pub contact: Option<FilterText>,
    /// Groups.
    pub group: Option<FilterText>,
}

/// How source people are paired with destination objects.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Matching {
    /// `batch` plans without asking; `interactive` asks about each soft match. Default: `batch`.
    #[schemars(extend("default" = "batch"))]
    pub mode: Option<Mode>,
    /// Soft matches an administrator confirmed: this source person is this destination object.
    pub confirmed: Option<Vec<Confirmed>>,
    /// Remigrations: migrate this source person into this existing mailbox.
    pub remigrate: Option<Vec<Remigrate>>,
    /// Entries left out of matching: source persons left out of the wave, or destination objects
    /// never considered as match candidates.
    pub ignore: Option<Vec<Ignore>>,
}

/// How matching runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Soft matches are only reported as warnings; the person gets a new mailbox (unless a
    /// confirmed pin says otherwise).
    Batch,
    /// Soft matches are proposed: a person with an unconfirmed soft candidate gets no actions
    /// (`needs_confirmation`) until the match is confirmed in `matching.confirmed`.
    Interactive,
}

/// A confirmed match.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Confirmed {
    /// The source person's DN.
    #[schemars(required)]
    pub source: Option<DnText>,
    /// The destination object's DN.
    #[schemars(required)]
    pub destination: Option<DnText>,
}

/// A remigration target.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Remigrate {
    /// The source person's DN.
    #[schemars(required)]
    pub source: Option<DnText>,
    /// The DN of the existing destination mailbox user to migrate into.
    #[schemars(required)]
    pub mailbox: Option<DnText>,
}

/// One entry left out of matching: exactly one of `source` or `destination`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend("minProperties" = 1, "maxProperties" = 1)
)]
pub struct Ignore {
    /// A source person left out of the wave.
    pub source: Option<DnText>,
    /// A destination object never considered as a match candidate.
    pub destination: Option<DnText>,
}

/// How contact data is merged into the mailbox that replaces it.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Merge {
    /// Which side wins when both have a value. Default: `fill-empty`.
    #[schemars(extend("default" = "fill-empty"))]
    pub policy: Option<MergePolicy>,
    /// The attributes merged. Default: telephoneNumber, mobile, facsimileTelephoneNumber, title,
    /// department, company, physicalDeliveryOfficeName, streetAddress, l, st, postalCode, c,
    /// description, info.
    pub attributes: Option<Vec<AttrText>>,
}

/// Which side wins when a contact and the mailbox both have a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MergePolicy {
    /// A contact's value is copied only where the mailbox has none.
    FillEmpty,
    /// A contact's value replaces the mailbox's.
    PreferContact,
    /// The mailbox's directory data is kept as it is; contacts give only their addresses.
    PreferDestination,
}

/// Distribution lists (groups) to migrate.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DistributionLists {
    /// Which source entries are groups to migrate (an LDAP filter). Default:
    /// `(|(objectClass=dominoGroup)(objectClass=groupOfNames))`.
    #[schemars(extend("default" = "(|(objectClass=dominoGroup)(objectClass=groupOfNames))"))]
    pub filter: Option<FilterText>,
    /// When given, only these groups (by DN) are migrated.
    pub include: Option<Vec<DnText>>,
    /// These groups (by DN) are never migrated.
    pub exclude: Option<Vec<DnText>>,
    /// Where new groups are created. Default: the destination container.
    pub container: Option<DnText>,
}

/// Declares a text newtype whose meaning is checked by `load`, with its own schema entry so
/// editors show what the text must be. The schema's `title` names the kind of text; `load` reads
/// it back to say what was expected (a required key's schema is inlined, so no `$ref` names it).
macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $schema_name:literal, $schema:tt) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                $schema_name.into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

text_type!(
    /// A distinguished name, as written.
    DnText,
    "Dn",
    {
        "title": "DN",
        "type": "string",
        "description": "A distinguished name (RFC 4514), e.g. `CN=Jane Doe,OU=Sales,O=Acme`."
    }
);
text_type!(
    /// An LDAP search filter, as written.
    FilterText,
    "Filter",
    {
        "title": "LDAP filter",
        "type": "string",
        "description": "An LDAP search filter (RFC 4515), e.g. `(&(objectClass=person)(mail=*))`."
    }
);
text_type!(
    /// An attribute name, as written.
    AttrText,
    "AttributeName",
    {
        "title": "attribute name",
        "type": "string",
        "pattern": "^[A-Za-z0-9][A-Za-z0-9.;-]*$",
        "description": "An LDAP attribute name (case-insensitive), e.g. `telephoneNumber`."
    }
);
text_type!(
    /// A value template, as written.
    TemplateText,
    "Template",
    {
        "title": "template",
        "type": "string",
        "description": "A value template: text with `{placeholders}` naming a role (full_name, short_name, primary_smtp, notes_address, given_name, surname, sam_account_name) or a source attribute; `{{` and `}}` are literal braces. Quote it in YAML when it starts with `{`."
    }
);
text_type!(
    /// A DNS domain name, as written.
    DomainText,
    "Domain",
    {
        "title": "mail domain",
        "type": "string",
        "pattern": "^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$",
        "description": "A mail domain (DNS name), e.g. `acme.com`; case does not matter (it is kept in lower case)."
    }
);

/// A secret (a password), written as where to find it, never as the secret itself:
/// `{ env: NAME }` reads an environment variable, `{ file: PATH }` reads a file (relative paths
/// start at the plan file's folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Env(String),
    File(String),
}

pub(crate) const SECRET_HELP: &str =
    "secrets are never written in the plan file: use `{ env: NAME }` or `{ file: PATH }`";

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl SecretVisitor {
    fn plain<E: de::Error>(what: &str) -> E {
        // Never echo the value: it may well be the password itself.
        E::custom(format!(
            "a secret cannot be written as {what}{HELP_SEPARATOR}{SECRET_HELP}"
        ))
    }
}

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`{ env: NAME }` or `{ file: PATH }`")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Secret, E> {
        Err(Self::plain("a plain string"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
        Err(Self::plain("a plain number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
        Err(Self::plain("a plain number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(Self::plain("a plain number"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(Self::plain("a plain value"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
        let mut found: Option<Secret> = None;
        while let Some(key) = map.next_key::<String>()? {
            let secret = match key.as_str() {
                "env" => Secret::Env(map.next_value()?),
                "file" => Secret::File(map.next_value()?),
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown key `{other}` in a secret{HELP_SEPARATOR}{SECRET_HELP}"
                    )));
                }
            };
            if found.is_some() {
                return Err(de::Error::custom(format!(
                    "a secret has both `env` and `file`{HELP_SEPARATOR}keep exactly one of them"
                )));
            }
            found = Some(secret);
        }
        found.ok_or_else(|| {
            de::Error::custom(format!(
                "a secret needs `env` or `file`{HELP_SEPARATOR}{SECRET_HELP}"
            ))
        })
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A secret, never written in the plan file itself: `{ env: NAME }` or `{ file: PATH }`.",
            "oneOf": [
                {
                    "type": "object",
                    "properties": {
                        "env": { "type": "string", "description": "The environment variable that holds the secret." }
                    },
                    "required": ["env"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "properties": {
                        "file": { "type": "string", "description": "A file that holds the secret (a trailing newline is ignored)." }
                    },
                    "required": ["file"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// Items copied into each person's destination mailbox. Every path, login and URL below is a
/// template over the source person (`{short_name}`, `{primary_smtp}`, `{mail}`, `{uid}`, …), so one
/// line describes every person of the wave.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Items {
    /// Mail folders and messages.
    pub mail: Option<MailItems>,
    /// One calendar per person.
    pub calendars: Option<CalendarItems>,
    /// One address book per person.
    pub contacts: Option<ContactItems>,
    /// The most connections all of mailplan may hold at once to a server, by its endpoint
    /// `host:port` as the IMAP store or DAV URL above names it, e.g. `"mail.acme.test:993": 20`.
    /// Every apply and worker, on every machine that shares a PostgreSQL state, counts against
    /// it; `mailplan state set-cap` changes it while the wave runs.
    pub connections: Option<BTreeMap<String, u64>>,
}

/// Where each person's mail is read from and written to.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MailItems {
    /// The person's mailbox at the source.
    #[schemars(required)]
    pub source: Option<MailStore>,
    /// The person's mailbox at the destination.
    #[schemars(required)]
    pub destination: Option<MailStore>,
    /// How source folder names become destination folder names.
    pub folders: Option<Folders>,
    /// Only messages received on or after this date (`YYYY-MM-DD`, internal date) are copied.
    pub since: Option<String>,
    /// On a state that machines share: a mailbox whose new mail is larger than this is queued
    /// as one work unit per folder, so several workers copy it at once (`2 GiB` by default;
    /// bytes, or a number with `K`, `M`, `G`, `T`, also written `KiB`, `MiB`, `GiB`, `TiB`,
    /// each 1024 times the one before).
    pub unit_per_folder_above: Option<Size>,
}

/// A size: a number of bytes, or text such as `2 GiB` or `500M`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

/// A mail store: exactly one of `maildir` or `imap`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend("minProperties" = 1, "maxProperties" = 1)
)]
pub struct MailStore {
    /// A Maildir++ folder (a template), e.g. `mail/{short_name}`: `cur/`, `new/`, `tmp/` for the
    /// inbox and `.Sent`, `.Projects.2024` for folders; relative paths start at the plan file's
    /// folder.
    pub maildir: Option<TemplateText>,
    /// An IMAP server, logged into as each person with one admin credential.
    pub imap: Option<Imap>,
}

/// An IMAP server and how to log into each person's mailbox there.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Imap {
    /// `imaps://host:993` (TLS), `imap://host:143` (STARTTLS, required unless `tls: none`).
    /// Required, except for the destination of a Carbonio plan with `destination.url`: `imaps://`
    /// its host.
    pub url: Option<String>,
    /// The mailbox to open, as a template over the person, e.g. `{primary_smtp}`. Required,
    /// except for the destination of a Carbonio plan: `{primary_smtp}`, the account's name.
    pub user: Option<TemplateText>,
    /// The admin (master) user whose password is given; with `auth: login` the person's own
    /// login is used and this is left out.
    pub login: Option<String>,
    /// The admin's password (or, with `auth: login`, the one password every mailbox shares).
    #[schemars(required)]
    pub password: Option<Secret>,
    /// How the admin logs into each mailbox. Default: `master`; for the destination of a Carbonio
    /// plan, `plain` (SASL PLAIN with the account as authzid, as Carbonio's admin login works).
    #[schemars(extend("default" = "master"))]
    pub auth: Option<ImapAuth>,
    /// `starttls` (default for `imap://`) or `none` (plain text, only for loopback tests).
    pub tls: Option<ImapTls>,
    /// A PEM file with the CA certificate(s) to trust instead of the system's; a self-signed
    /// server certificate may be given as its own CA.
    pub ca_file: Option<String>,
    /// Skip certificate checks. Never do this outside a lab; mailplan warns every run.
    pub insecure: Option<bool>,
    /// Seconds to wait to connect (TLS and STARTTLS included), for each answer and for the
    /// server to take what is sent; a long answer must keep coming at 64 KiB per that time.
    /// Connecting, logging in and reads (listing, fetching) are tried again after a timeout; an
    /// APPEND is sent once.
    #[schemars(extend("default" = 30, "minimum" = 1))]
    pub timeout: Option<u64>,
}

/// How an admin credential opens a person's mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ImapAuth {
    /// SASL PLAIN with the person as authorization identity and the admin as authentication
    /// identity (Dovecot master users, Cyrus admins, Zimbra).
    Plain,
    /// Dovecot's master-user login: `LOGIN person*admin password`.
    Master,
    /// `LOGIN person password`: each person's own login, with one shared password (tests).
    Login,
}

/// Transport security for `imap://` URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ImapTls {
    /// Upgrade with STARTTLS and verify the certificate.
    Starttls,
    /// No TLS at all: passwords cross the network in clear text.
    None,
}

/// How source folders are named at the destination.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Folders {
    /// Source folder → destination folder, with `/` between levels. Notes' `($Inbox)`,
    /// `($Sent)`, `($Drafts)` and `($Trash)` map to `INBOX`, `Sent`, `Drafts` and `Trash` unless
    /// given here.
    pub map: Option<BTreeMap<String, String>>,
    /// A character that separates levels inside source folder names (Notes exports write
    /// `Projects\2024`: give `"\\"`); it becomes `/`.
    pub separator: Option<String>,
    /// Source folders not copied (`Junk`, or `Archive/*` for a folder and everything below it).
    pub exclude: Option<Vec<String>>,
}

/// Where each person's calendar is read from and written to.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CalendarItems {
    /// The person's calendar export.
    #[schemars(required)]
    pub source: Option<CalendarSource>,
    /// The person's calendar at the destination.
    #[schemars(required)]
    pub destination: Option<CalendarDestination>,
}

/// A calendar export.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CalendarSource {
    /// One iCalendar file per person (a template), e.g. `calendars/{short_name}.ics`.
    #[schemars(required)]
    pub ics: Option<TemplateText>,
}

/// A calendar destination: exactly one of `caldav` or `ics_folder`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend("minProperties" = 1, "maxProperties" = 1)
)]
pub struct CalendarDestination {
    /// A CalDAV calendar collection; one resource per event UID.
    pub caldav: Option<Dav>,
    /// A folder (a template) that gets one `<uid>.ics` per event.
    pub ics_folder: Option<TemplateText>,
}

/// Where each person's contacts are read from and written to.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ContactItems {
    /// The person's contacts export.
    #[schemars(required)]
    pub source: Option<ContactSource>,
    /// The person's address book at the destination.
    #[schemars(required)]
    pub destination: Option<ContactDestination>,
}

/// A contacts export.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ContactSource {
    /// One CSV file per person with Zimbra headers (`firstName`, `lastName`, `email`, …), a
    /// template, e.g. `contacts/{short_name}.csv`.
    #[schemars(required)]
    pub csv: Option<TemplateText>,
}

/// A contacts destination: exactly one of `carddav` or `vcard_folder`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend("minProperties" = 1, "maxProperties" = 1)
)]
pub struct ContactDestination {
    /// A CardDAV address book; one vCard per contact.
    pub carddav: Option<Dav>,
    /// A folder (a template) that gets one `<uid>.vcf` per contact.
    pub vcard_folder: Option<TemplateText>,
}

/// A CalDAV or CardDAV collection.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Dav {
    /// The collection's URL, a template, e.g. `https://dav.acme.test/{primary_smtp}/calendar/`.
    /// Required, except in a Carbonio plan with `destination.url`: Carbonio's
    /// `URL/dav/{primary_smtp}/Calendar/` or `URL/dav/{primary_smtp}/Contacts/`.
    pub url: Option<TemplateText>,
    /// The user to log in as (a template); leave out for no authentication.
    pub login: Option<TemplateText>,
    /// The password.
    pub password: Option<Secret>,
    /// A PEM file with the CA certificate(s) to trust instead of the system's; a self-signed
    /// server certificate may be given as its own CA. Relative paths start at the plan file's
    /// folder.
    pub ca_file: Option<String>,
    /// Skip certificate checks. Never do this outside a lab; mailplan warns every run.
    pub insecure: Option<bool>,
    /// Seconds to wait to connect and for each read of an answer (a whole request may take ten
    /// times this). Reads that change nothing are tried again after a timeout.
    #[schemars(extend("default" = 30, "minimum" = 1))]
    pub timeout: Option<u64>,
    /// vCard version for CardDAV: `4` (default) or `3`.
    pub vcard_version: Option<u8>,
}
