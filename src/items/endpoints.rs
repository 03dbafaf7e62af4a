//! Endpoints: the plan file's item templates expanded for one person.
//!
//! A template that cannot be expanded for a person (the attribute it names is empty) is that
//! person's problem only: it becomes an error string on their endpoint, reported in the plan.
//! Pure: it reads the source snapshot it is given and nothing else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::directory::{Dn, Entry, Snapshot};
use crate::matching::Person;
use crate::matching::rules::SourceRules;
use crate::spec::{
    CalendarDestination, ContactDestination, DavStore, ImapStore, MailStore, PathTemplate, Role,
    Spec, Template, TemplatePart,
};

/// A mail store for one person.
#[derive(Debug, Clone)]
pub enum MailAt {
    Maildir(PathBuf),
    Imap { store: ImapStore, user: String },
}

impl MailAt {
    /// How the ledger names this mailbox: stable across runs, free of secrets.
    pub fn ledger_name(&self) -> String {
        match self {
            MailAt::Maildir(p) => format!("maildir:{}", p.display()),
            MailAt::Imap { store, user } => {
                format!(
                    "imap://{}:{}/{}",
                    store.host,
                    store.port,
                    user.to_lowercase()
                )
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct MailEndpoints {
    pub source: MailAt,
    pub destination: MailAt,
}

/// A CalDAV/CardDAV collection for one person.
#[derive(Debug, Clone)]
pub struct DavAt {
    pub url: String,
    pub login: Option<String>,
    pub store: DavStore,
}

#[derive(Debug, Clone)]
pub enum CalendarAt {
    CalDav(DavAt),
    IcsFolder(PathBuf),
}

#[derive(Debug, Clone)]
pub struct CalendarEndpoints {
    pub source: PathBuf,
    pub destination: CalendarAt,
}

#[derive(Debug, Clone)]
pub enum ContactsAt {
    CardDav(DavAt),
    VcardFolder(PathBuf),
}

#[derive(Debug, Clone)]
pub struct ContactEndpoints {
    pub source: PathBuf,
    pub destination: ContactsAt,
}

impl CalendarAt {
    pub fn ledger_name(&self) -> String {
        match self {
            CalendarAt::CalDav(d) => d.url.clone(),
            CalendarAt::IcsFolder(p) => format!("ics:{}", p.display()),
        }
    }
}

impl ContactsAt {
    pub fn ledger_name(&self) -> String {
        match self {
            ContactsAt::CardDav(d) => d.url.clone(),
            ContactsAt::VcardFolder(p) => format!("vcard:{}", p.display()),
        }
    }
}

/// One person's endpoints; `None` for a kind the plan does not copy, `Err` when its templates do
/// not expand for this person.
#[derive(Debug, Clone, Default)]
pub struct PersonEndpoints {
    pub mail: Option<Result<MailEndpoints, String>>,
    pub calendar: Option<Result<CalendarEndpoints, String>>,
    pub contacts: Option<Result<ContactEndpoints, String>>,
}

impl PersonEndpoints {
    pub fn is_empty(&self) -> bool {
        self.mail.is_none() && self.calendar.is_none() && self.contacts.is_none()
    }
}

/// Every person of the wave's endpoints, by source DN; empty when the plan copies no items.
pub fn endpoints_for(spec: &Spec, source: &Snapshot) -> BTreeMap<Dn, PersonEndpoints> {
    let items = &spec.items;
    if !items.any() {
        return BTreeMap::new();
    }
    let rules = SourceRules::for_spec(spec);
    crate::matching::select_persons(spec, source, &rules)
        .into_iter()
        .map(|p| {
            let entry = source.entry(p.id);
            let e = Expander {
                person: &p,
                entry,
                domains: &spec.destination.domains,
            };
            (p.dn.clone(), e.endpoints(spec))
        })
        .collect()
}

/// `a/b/../c` → `a/c`, without asking the file system: the path names a mailbox in the
/// ledger, so one place must have one name (`..` in a plan file is the plan's own, never a
/// person's: values were checked before).
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

struct Expander<'a> {
    person: &'a Person,
    entry: &'a Entry,
    domains: &'a [String],
}

impl Expander<'_> {
    fn endpoints(&self, spec: &Spec) -> PersonEndpoints {
        let items = &spec.items;
        PersonEndpoints {
            mail: items.mail.as_ref().map(|m| {
                Ok(MailEndpoints {
                    source: self.mail_at(&m.source)?,
                    destination: self.mail_at(&m.destination)?,
                })
            }),
            calendar: items.calendars.as_ref().map(|c| {
                Ok(CalendarEndpoints {
                    source: self.path(&c.source)?,
                    destination: match &c.destination {
                        CalendarDestination::CalDav(d) => CalendarAt::CalDav(self.dav(d)?),
                        CalendarDestination::IcsFolder(p) => CalendarAt::IcsFolder(self.path(p)?),
                    },
                })
            }),
            contacts: items.contacts.as_ref().map(|c| {
                Ok(ContactEndpoints {
                    source: self.path(&c.source)?,
                    destination: match &c.destination {
                        ContactDestination::CardDav(d) => ContactsAt::CardDav(self.dav(d)?),
                        ContactDestination::VcardFolder(p) => {
                            ContactsAt::VcardFolder(self.path(p)?)
                        }
                    },
                })
            }),
        }
    }

    fn mail_at(&self, store: &MailStore) -> Result<MailAt, String> {
        Ok(match store {
            MailStore::Maildir(p) => MailAt::Maildir(self.path(p)?),
            MailStore::Imap(i) => MailAt::Imap {
                store: i.clone(),
                user: self.expand(&i.user)?,
            },
        })
    }

    fn dav(&self, d: &DavStore) -> Result<DavAt, String> {
        Ok(DavAt {
            url: self.expand(&d.url)?,
            login: d.login.as_ref().map(|l| self.expand(l)).transpose()?,
            store: d.clone(),
        })
    }

    fn path(&self, p: &PathTemplate) -> Result<PathBuf, String> {
        let text = self.expand_with(&p.template, |v| {
            if v.contains('/') || v.contains('\0') || v == ".." || v == "." {
                Err(format!(
                    "`{v}` cannot be part of a path: a person's attribute must not choose other folders"
                ))
            } else {
                Ok(())
            }
        })?;
        let path = Path::new(&text);
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            p.base.join(path)
        };
        Ok(lexical(&joined))
    }

    /// The template with the person's values; an error names the placeholder that is empty.
    fn expand(&self, t: &Template) -> Result<String, String> {
        self.expand_with(t, |_| Ok(()))
    }

    /// `expand`, with every substituted value checked.
    fn expand_with(
        &self,
        t: &Template,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Result<String, String> {
        let mut out = String::new();
        for part in &t.parts {
            let value = match part {
                TemplatePart::Literal(s) => Some(s.clone()),
                TemplatePart::Attr(a) => self.entry.text(a.as_str()).map(str::to_string),
                TemplatePart::Role(r) => self.role(*r),
            };
            match value {
                Some(v) => {
                    if !matches!(part, TemplatePart::Literal(_)) {
                        check(&v)?;
                    }
                    out.push_str(&v);
                }
                None => {
                    let name = match part {
                        TemplatePart::Attr(a) => a.to_string(),
                        TemplatePart::Role(r) => Role::ALL
                            .iter()
                            .find(|x| x.1 == *r)
                            .map_or("?", |x| x.0)
                            .to_string(),
                        TemplatePart::Literal(_) => String::new(),
                    };
                    return Err(format!("`{{{name}}}` has no value for this person"));
                }
            }
        }
        Ok(out)
    }

    fn role(&self, r: Role) -> Option<String> {
        let p = self.person;
        match r {
            Role::FullName => Some(p.display_name()),
            // Before planning there is no account name yet: the first short name stands for it.
            Role::ShortName | Role::SamAccountName => p.short_names.first().cloned(),
            Role::PrimarySmtp => self
                .domains
                .iter()
                .find_map(|d| {
                    p.smtp.iter().find(|a| {
                        a.rsplit_once('@')
                            .is_some_and(|(_, dom)| dom.eq_ignore_ascii_case(d))
                    })
                })
                .or_else(|| p.smtp.first())
                .cloned(),
            Role::NotesAddress => p.notes.clone(),
            Role::GivenName => p.given_name.clone(),
            Role::Surname => p.surname.clone(),
        }
    }
}
