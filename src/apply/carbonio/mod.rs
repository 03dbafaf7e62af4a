//! Carbonio as an apply destination: the executor's `DirectoryWriter`, with reads from the live
//! directory Carbonio runs on (its LDAP, through the LDAP backend: preconditions and backups see
//! exactly what is there) and writes through Carbonio's admin SOAP API, as Carbonio wants its
//! objects made (it assigns ids, creates mailboxes, keeps alias entries in step).
//!
//! The translation: an added `zimbraAccount` entry is a `CreateAccountRequest` named by its
//! `zimbraMailDeliveryAddress`, a `zimbraDistributionList` a `CreateDistributionListRequest`, a
//! `zimbraAlias` entry or a `zimbraMailAlias` value added to an account an
//! `AddAccountAliasRequest`, other changes to an account a `ModifyAccountRequest` (`+attr` and
//! `-attr` for values added and removed), values added to a list's `zimbraMailForwardingAddress`
//! an `AddDistributionListMemberRequest`. Anything else is refused with
//! [`WriteError::Server`] naming what cannot be expressed; nothing is dropped. Carbonio's
//! "exists" and "no such" faults become the writer's `AlreadyExists` and `NoSuchObject`, so the
//! executor converges on a rerun as it does on LDAP.
//!
//! With Accounts Auto Provisioning (`provisioning: { auto: true }`) there is no SOAP session:
//! Carbonio creates the accounts, and [`DirectoryWriter::wait_for`] waits, bounded, for each.
//! This module must not decide what to change, and never shows a password or the auth token.

pub mod soap;

use std::io::Read as _;
use std::time::{Duration, Instant};

use crate::apply::LdapDirectory;
use crate::apply::writer::{DirectoryWriter, WriteError};
use crate::directory::ldif::{ModOp, Modification};
use crate::directory::{Dn, Entry, Value};
use crate::spec::{Carbonio, LdapSettings, PasswordPolicy, Provisioning};

pub use soap::{Request, SoapClient, SoapError};

/// Why Carbonio could not be set up as a destination.
#[derive(Debug, thiserror::Error)]
pub enum CarbonioError {
    #[error("its directory: {0}")]
    Ldap(crate::directory::ldap::LdapError),
    #[error("its admin SOAP API: {0}")]
    Soap(SoapError),
    #[error("the plan says nothing of how accounts are created (`destination.provisioning`)")]
    NoProvisioning,
}

/// Attributes Carbonio sets itself from a new account's name; they are not sent as `<a>`.
const NAMED_BY_ACCOUNT: &[&str] = &["objectClass", "uid", "mail", "zimbraMailDeliveryAddress"];
/// The same for a new distribution list.
const NAMED_BY_LIST: &[&str] = &["objectClass", "uid", "mail"];

/// How often an awaited account is looked for.
const POLL: Duration = Duration::from_millis(500);

/// Carbonio's directory, written through its admin API.
pub struct CarbonioDirectory {
    ldap: LdapDirectory,
    /// `None` with Auto Provisioning: nothing is written, accounts are awaited.
    soap: Option<SoapClient>,
    password: PasswordPolicy,
    /// With Auto Provisioning: until when accounts are awaited (one deadline for the run, so
    /// the whole wait is bounded however many persons there are).
    deadline: Option<(Instant, Duration)>,
}

impl CarbonioDirectory {
    /// Connects to the directory and, with `provisioning: soap`, logs in to the admin API: a
    /// wrong password fails here, before anything is written.
    pub async fn connect(
        ldap: &LdapSettings,
        carbonio: &Carbonio,
        parallelism: usize,
    ) -> Result<Self, CarbonioError> {
        let (soap, deadline) = match &carbonio.provisioning {
            None => return Err(CarbonioError::NoProvisioning),
            Some(Provisioning::Soap(settings)) => (
                Some(
                    SoapClient::login(settings)
                        .await
                        .map_err(CarbonioError::Soap)?,
                ),
                None,
            ),
            Some(Provisioning::Auto) => (None, Some((Instant::now(), carbonio.auto_wait))),
        };
        let ldap = LdapDirectory::connect(ldap, parallelism)
            .await
            .map_err(CarbonioError::Ldap)?;
        Ok(CarbonioDirectory {
            ldap,
            soap,
            password: carbonio.password_policy,
            deadline,
        })
    }

    async fn call(&self, dn: &Dn, account: &str, request: Request) -> Result<(), WriteError> {
        let Some(soap) = &self.soap else {
            return Err(WriteError::Server {
                dn: dn.clone(),
                message: format!(
                    "{} for {account} needs the admin SOAP API, and the plan lets Auto \
                     Provisioning create accounts (`provisioning: {{ auto: true }}`): \
                     carry it out by hand, or use `provisioning: {{ soap: … }}`",
                    request.name()
                ),
            });
        };
        soap.call(&request).await.map(|_| ()).map_err(|e| match e {
            SoapError::Fault { code, reason, .. } => {
                fault_to_write_error(dn, &request, account, &code, &reason)
            }
            other => WriteError::Server {
                dn: dn.clone(),
                message: format!("{account}: {other}"),
            },
        })
    }

    async fn live(&self, dn: &Dn) -> Result<Entry, WriteError> {
        self.ldap
            .get(dn)
            .await?
            .ok_or_else(|| WriteError::NoSuchObject(dn.clone()))
    }
}

/// What a fault means to the executor: Carbonio's "exists" and "no such" faults are LDAP's
/// entryAlreadyExists and noSuchObject; any other is reported with its code and the account.
fn fault_to_write_error(
    dn: &Dn,
    request: &Request,
    account: &str,
    code: &str,
    reason: &str,
) -> WriteError {
    match (code, request) {
        // The address is taken: as an alias, a value already there.
        ("account.ACCOUNT_EXISTS", Request::AddAccountAlias { alias, .. }) => {
            WriteError::ValueExists {
                dn: dn.clone(),
                attribute: "zimbraMailAlias".into(),
                value: alias.clone(),
            }
        }
        ("account.ACCOUNT_EXISTS" | "account.DISTRIBUTION_LIST_EXISTS", _) => {
            WriteError::AlreadyExists(dn.clone())
        }
        ("account.NO_SUCH_ACCOUNT" | "account.NO_SUCH_DISTRIBUTION_LIST", _) => {
            WriteError::NoSuchObject(dn.clone())
        }
        ("account.NO_SUCH_DOMAIN", _) => WriteError::NoSuchObject(dn.parent()),
        _ => WriteError::Server {
            dn: dn.clone(),
            message: format!(
                "Carbonio refused {} for {account}: fault {code}: {reason}",
                request.name()
            ),
        },
    }
}

fn unsupported(dn: &Dn, what: String) -> WriteError {
    WriteError::Server {
        dn: dn.clone(),
        message: format!(
            "{what}: Carbonio's admin API as mailplan uses it cannot express this, so nothing was written"
        ),
    }
}

fn text<'v>(dn: &Dn, attr: &str, v: &'v Value) -> Result<&'v str, WriteError> {
    v.as_str()
        .ok_or_else(|| unsupported(dn, format!("a binary value of `{attr}`")))
}

/// The entry's attributes as `<a n=…>` pairs, in name order, leaving out `skip`.
fn attrs_of(entry: &Entry, skip: &[&str]) -> Result<Vec<(String, String)>, WriteError> {
    let mut out = Vec::new();
    for (name, values) in &entry.attrs {
        let n = name.to_string();
        if skip.iter().any(|s| s.eq_ignore_ascii_case(&n)) {
            continue;
        }
        for v in values.iter() {
            out.push((n.clone(), text(&entry.dn, &n, v)?.to_string()));
        }
    }
    Ok(out)
}

/// The address an alias entry `uid=local,ou=people,dc=acme,dc=com` stands for.
fn alias_address(dn: &Dn) -> Option<String> {
    let local = dn.rdn_value()?;
    let domain: Vec<String> = dn
        .rdns()
        .iter()
        .filter_map(|r| r.value_of("dc").map(str::to_string))
        .collect();
    (!domain.is_empty()).then(|| format!("{local}@{}", domain.join(".")))
}

/// A password for a new account: 24 bytes from the operating system's random source, as
/// base64 (32 characters). It goes into the `CreateAccountRequest` and nowhere else.
fn random_password(dn: &Dn) -> Result<String, WriteError> {
    use base64::Engine as _;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| WriteError::Server {
            dn: dn.clone(),
            message: format!("cannot read the system's random source for a password: {e}"),
        })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A name to report an entry by: its address, else its DN.
fn name_of(entry: &Entry) -> String {
    entry
        .text("zimbraMailDeliveryAddress")
        .or_else(|| entry.text("mail"))
        .map(str::to_string)
        .unwrap_or_else(|| entry.dn.to_string())
}

impl DirectoryWriter for CarbonioDirectory {
    async fn get(&self, dn: &Dn) -> Result<Option<Entry>, WriteError> {
        self.ldap.get(dn).await
    }

    async fn add(&self, entry: Entry) -> Result<(), WriteError> {
        let dn = entry.dn.clone();
        if entry.has_class("zimbraAccount") {
            let Some(name) = entry.text("zimbraMailDeliveryAddress") else {
                return Err(unsupported(
                    &dn,
                    "an account without zimbraMailDeliveryAddress to name it".into(),
                ));
            };
            let password = match self.password {
                PasswordPolicy::Random if self.soap.is_some() => Some(random_password(&dn)?),
                _ => None,
            };
            let request = Request::CreateAccount {
                name: name.to_string(),
                password,
                attrs: attrs_of(&entry, NAMED_BY_ACCOUNT)?,
            };
            return self.call(&dn, name, request).await;
        }
        if entry.has_class("zimbraDistributionList") {
            let Some(name) = entry
                .text("mail")
                .or_else(|| entry.text("zimbraMailDeliveryAddress"))
            else {
                return Err(unsupported(
                    &dn,
                    "a distribution list without an address".into(),
                ));
            };
            // Carbonio makes the list's own address its first zimbraMailAlias itself.
            let mut attrs = attrs_of(&entry, NAMED_BY_LIST)?;
            attrs.retain(|(n, v)| {
                !(n.eq_ignore_ascii_case("zimbraMailAlias") && v.eq_ignore_ascii_case(name))
            });
            let request = Request::CreateDistributionList {
                name: name.to_string(),
                attrs,
            };
            return self.call(&dn, name, request).await;
        }
        if entry.has_class("zimbraAlias") {
            let (Some(target), Some(alias)) =
                (entry.text("zimbraAliasTargetId"), alias_address(&dn))
            else {
                return Err(unsupported(
                    &dn,
                    "an alias without zimbraAliasTargetId or an address in its DN".into(),
                ));
            };
            let request = Request::AddAccountAlias {
                id: target.to_string(),
                alias: alias.clone(),
            };
            // Here the alias is the entry: taken means it exists.
            return self.call(&dn, &alias, request).await.map_err(|e| match e {
                WriteError::ValueExists { .. } => WriteError::AlreadyExists(dn.clone()),
                e => e,
            });
        }
        Err(unsupported(
            &dn,
            format!(
                "a new entry of classes {}",
                entry.texts("objectClass").collect::<Vec<_>>().join(", ")
            ),
        ))
    }

    async fn modify(&self, dn: &Dn, mods: Vec<Modification>) -> Result<(), WriteError> {
        let live = self.live(dn).await?;
        let account = name_of(&live);
        let Some(id) = live.text("zimbraId").map(str::to_string) else {
            return Err(unsupported(dn, format!("{account} has no zimbraId")));
        };
        if live.has_class("zimbraAccount") {
            let mut attrs = Vec::new();
            let mut aliases = Vec::new();
            for m in &mods {
                let name = m.attr.to_string();
                let is_alias = name.eq_ignore_ascii_case("zimbraMailAlias");
                match m.op {
                    ModOp::Add if is_alias => {
                        for v in &m.values {
                            aliases.push(text(dn, &name, v)?.to_string());
                        }
                    }
                    _ if is_alias => {
                        return Err(unsupported(
                            dn,
                            format!("removing or replacing aliases of {account}"),
                        ));
                    }
                    ModOp::Add => {
                        for v in &m.values {
                            attrs.push((format!("+{name}"), text(dn, &name, v)?.to_string()));
                        }
                    }
                    ModOp::Delete if m.values.is_empty() => attrs.push((name, String::new())),
                    ModOp::Delete => {
                        for v in &m.values {
                            attrs.push((format!("-{name}"), text(dn, &name, v)?.to_string()));
                        }
                    }
                    ModOp::Replace if m.values.is_empty() => attrs.push((name, String::new())),
                    ModOp::Replace => {
                        for v in &m.values {
                            attrs.push((name.clone(), text(dn, &name, v)?.to_string()));
                        }
                    }
                    ModOp::Increment => {
                        return Err(unsupported(dn, format!("an increment of `{name}`")));
                    }
                }
            }
            if !attrs.is_empty() {
                let request = Request::ModifyAccount {
                    id: id.clone(),
                    attrs,
                };
                self.call(dn, &account, request).await?;
            }
            for alias in aliases {
                let request = Request::AddAccountAlias {
                    id: id.clone(),
                    alias: alias.clone(),
                };
                self.call(dn, &account, request).await?;
            }
            return Ok(());
        }
        if live.has_class("zimbraDistributionList") {
            let mut members = Vec::new();
            for m in &mods {
                let name = m.attr.to_string();
                if m.op == ModOp::Add && name.eq_ignore_ascii_case("zimbraMailForwardingAddress") {
                    for v in &m.values {
                        members.push(text(dn, &name, v)?.to_string());
                    }
                } else {
                    return Err(unsupported(
                        dn,
                        format!(
                            "a change of `{name}` of distribution list {account} other than adding members"
                        ),
                    ));
                }
            }
            if members.is_empty() {
                return Ok(());
            }
            let request = Request::AddDistributionListMember { id, members };
            return self.call(dn, &account, request).await;
        }
        Err(unsupported(
            dn,
            format!("a change of {account}, which is neither an account nor a distribution list"),
        ))
    }

    async fn delete(&self, dn: &Dn) -> Result<(), WriteError> {
        Err(unsupported(dn, "a delete".into()))
    }

    async fn wait_for(&self, dn: &Dn) -> Option<Result<bool, WriteError>> {
        let (started, wait) = self.deadline?;
        loop {
            match self.ldap.get(dn).await {
                Ok(Some(_)) => return Some(Ok(true)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            if started.elapsed() >= wait {
                return Some(Ok(false));
            }
            tokio::time::sleep(POLL.min(wait.saturating_sub(started.elapsed()))).await;
        }
    }

    fn waits_for(&self) -> Option<Duration> {
        self.deadline.map(|(_, w)| w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_entry_names_its_address() {
        let dn = Dn::parse("uid=js,ou=people,dc=acme,dc=com").unwrap();
        assert_eq!(alias_address(&dn).as_deref(), Some("js@acme.com"));
    }

    fn create() -> Request {
        Request::CreateAccount {
            name: "a@acme.com".into(),
            password: None,
            attrs: Vec::new(),
        }
    }

    #[test]
    fn exists_and_no_such_faults_are_what_ldap_would_say() {
        let dn = Dn::parse("uid=a,ou=people,dc=acme,dc=com").unwrap();
        assert_eq!(
            fault_to_write_error(&dn, &create(), "a@acme.com", "account.ACCOUNT_EXISTS", ""),
            WriteError::AlreadyExists(dn.clone())
        );
        assert_eq!(
            fault_to_write_error(&dn, &create(), "a@acme.com", "account.NO_SUCH_ACCOUNT", ""),
            WriteError::NoSuchObject(dn.clone())
        );
        let other = fault_to_write_error(
            &dn,
            &create(),
            "a@acme.com",
            "account.INVALID_ATTR_VALUE",
            "bad cn",
        )
        .to_string();
        assert!(
            other.contains("account.INVALID_ATTR_VALUE") && other.contains("a@acme.com"),
            "{other}"
        );
    }

    #[test]
    fn random_passwords_differ() {
        let dn = Dn::parse("uid=a,dc=b").unwrap();
        let a = random_password(&dn).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_password(&dn).unwrap());
    }
}
