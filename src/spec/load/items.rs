//! The `items` section: mail (Maildir, IMAP, folder mapping), calendars and contacts (DAV or
//! folders), each with its own rules of which keys go together.
//!
//! Checks the file only: nothing connects to a store and no folder is read.

use super::*;

/// A calendar or contacts destination before it is given its kind.
pub(super) enum DavOrFolder {
    Dav(DavStore),
    Folder(PathTemplate),
}

/// `YYYY-MM-DD` → seconds since 1970-01-01T00:00:00Z.
pub(super) fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    crate::items::days_from_civil(y, m, d).map(|days| days * 86_400)
}

/// A size: bytes, or a whole number with `K`, `M`, `G` or `T` (also `KB`/`KiB` and so on, each
/// 1024 times the one before; a space between is allowed) → bytes. `None` when it is not one, or
/// does not fit 64 bits.
pub(super) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let unit = unit.trim_start();
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return None,
    };
    number.checked_mul(1u64 << shift)
}

/// `imaps://host[:port]` or `imap://host[:port]` → (host, port, implicit TLS).
pub(super) fn parse_imap_url(url: &str) -> Option<(String, u16, bool)> {
    let (rest, tls, default) = if let Some(r) = url.strip_prefix("imaps://") {
        (r, true, 993)
    } else if let Some(r) = url.strip_prefix("imap://") {
        (r, false, 143)
    } else {
        return None;
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, _)) if !h.ends_with(']') && h.contains(':') => (rest, default),
        Some((h, p)) => (h, p.parse().ok()?),
        None => (rest, default),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port, tls))
}

impl Checker<'_> {
    pub(super) fn items(&mut self, i: raw::Items, path: &YamlPath) -> Option<Items> {
        let mail = i.mail.map(|m| self.mail_items(m, &path.key("mail")));
        let calendars = i
            .calendars
            .map(|c| self.calendar_items(c, &path.key("calendars")));
        let contacts = i
            .contacts
            .map(|c| self.contact_items(c, &path.key("contacts")));
        let mut items = Items {
            mail: checked(mail)?,
            calendars: checked(calendars)?,
            contacts: checked(contacts)?,
            connections: BTreeMap::new(),
        };
        if let Some(c) = i.connections {
            items.connections = self.connections(c, &items, &path.key("connections"))?;
        }
        Some(items)
    }

    /// `items.connections`: each endpoint one the plan's stores connect to, each cap a
    /// positive number (a pair of mail sessions on one endpoint needs two).
    fn connections(
        &mut self,
        written: BTreeMap<String, u64>,
        items: &Items,
        path: &YamlPath,
    ) -> Option<BTreeMap<String, u32>> {
        let used = crate::items::caps::plan_endpoints(items);
        let both_sides: Vec<String> = items
            .mail
            .as_ref()
            .and_then(|m| match (&m.source, &m.destination) {
                (MailStore::Imap(s), MailStore::Imap(d)) => {
                    let (s, d) = (
                        crate::items::caps::imap_endpoint(s),
                        crate::items::caps::imap_endpoint(d),
                    );
                    (s == d).then_some(vec![s])
                }
                _ => None,
            })
            .unwrap_or_default();
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (endpoint, n) in written {
            let p = path.key(&endpoint);
            let name = endpoint.trim().to_ascii_lowercase();
            if !used.contains(&name) {
                ok = false;
                let span = self.index.key_span(&p).unwrap_or_else(|| self.span(&p));
                let help = if used.is_empty() {
                    "no store of this plan file connects to a server: remove `items.connections`"
                        .to_owned()
                } else {
                    format!(
                        "the plan file's stores connect to {}",
                        join_or(&used.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>())
                    )
                };
                self.push(
                    Problem::new(
                        codes::UNKNOWN_VALUE,
                        format!("`{p}` names an endpoint no store of this plan file uses"),
                    )
                    .label(span, "not an endpoint of this plan file")
                    .help(help),
                );
                continue;
            }
            let least = if both_sides.contains(&name) { 2 } else { 1 };
            match u32::try_from(n) {
                Ok(n) if n >= least => {
                    out.insert(name, n);
                }
                _ => {
                    ok = false;
                    let span = self.span(&p);
                    let (message, label, help) = if n == 0 {
                        (
                            format!("`{p}` must allow at least 1 connection"),
                            "0 connections would stop every copy".to_owned(),
                            "write the most connections mailplan may hold to it at once; leave \
                             the endpoint out for no cap"
                                .to_owned(),
                        )
                    } else if n < u64::from(least) {
                        (
                            format!("`{p}` must allow at least 2 connections"),
                            "a pair of mail sessions needs 2".to_owned(),
                            format!(
                                "`{name}` is both the source and the destination of the mail: \
                                 each mailbox copies over a source and a destination session, \
                                 so write at least 2"
                            ),
                        )
                    } else {
                        (
                            format!("`{p}` is too large"),
                            "too large".to_owned(),
                            format!("write at most {}, or leave the endpoint out", u32::MAX),
                        )
                    };
                    self.push(
                        Problem::new(codes::WRONG_TYPE, message)
                            .label(span, label)
                            .help(help),
                    );
                }
            }
        }
        ok.then_some(out)
    }

    pub(super) fn path_template(
        &mut self,
        t: &raw::TemplateText,
        path: &YamlPath,
    ) -> Option<PathTemplate> {
        let text = self.non_empty(t.0.clone(), path)?;
        let template = self.template(&raw::TemplateText(text), path)?;
        Some(PathTemplate {
            template,
            base: self.base_dir(),
        })
    }

    pub(super) fn mail_items(&mut self, m: raw::MailItems, path: &YamlPath) -> Option<MailItems> {
        let source = m
            .source
            .and_then(|s| self.mail_store(&s, &path.key("source")));
        let destination = m
            .destination
            .and_then(|d| self.mail_store(&d, &path.key("destination")));
        let folders = self.folders(m.folders.unwrap_or_default(), &path.key("folders"));
        let since = match &m.since {
            Some(text) => match parse_date(text.trim()) {
                Some(secs) => Some(Some(secs)),
                None => {
                    let p = path.key("since");
                    let span = self.span(&p);
                    self.push(
                        Problem::new(codes::WRONG_TYPE, format!("`{p}` is not a date: `{text}`"))
                            .label(span, "expected YYYY-MM-DD")
                            .help("write the first day whose mail is copied, e.g. `2020-01-31`"),
                    );
                    None
                }
            },
            None => Some(None),
        };
        let above = match &m.unit_per_folder_above {
            None => Some(crate::spec::model::UNIT_PER_FOLDER_ABOVE),
            Some(raw::Size::Bytes(n)) => Some(*n),
            Some(raw::Size::Text(text)) => match parse_size(text) {
                Some(n) => Some(n),
                None => {
                    let p = path.key("unit_per_folder_above");
                    let span = self.span(&p);
                    self.push(
                        Problem::new(codes::WRONG_TYPE, format!("`{p}` is not a size: `{text}`"))
                            .label(span, "expected bytes, or a number with K, M, G or T")
                            .help("write a size such as `2 GiB`, `500M` or `1048576`"),
                    );
                    None
                }
            },
        };
        Some(MailItems {
            source: source?,
            destination: destination?,
            folders: folders?,
            since: since?,
            unit_per_folder_above: above?,
        })
    }

    /// Exactly one backend key of a store-like mapping.
    pub(super) fn one_backend(&mut self, set: &[&str], path: &YamlPath) -> bool {
        if set.len() == 1 {
            return true;
        }
        let span = self.index.key_span(path).unwrap_or_else(|| self.span(path));
        let valid = schema::keys_at(path).unwrap_or_default();
        let keys = valid
            .iter()
            .map(|k| format!("`{k}: ...`"))
            .collect::<Vec<_>>();
        let problem = if set.is_empty() {
            Problem::new(
                codes::INVALID_DIRECTORY,
                format!("`{path}` names no backend"),
            )
            .label(span, "no backend")
            .help(format!("add one of {}", join_or(&keys)))
        } else {
            Problem::new(
                codes::INVALID_DIRECTORY,
                format!("`{path}` names {} backends", set.len()),
            )
            .label(span, format!("{} are all given", set.join(" and ")))
            .help("exactly one backend: keep one")
        };
        self.push(problem);
        false
    }

    pub(super) fn mail_store(&mut self, s: &raw::MailStore, path: &YamlPath) -> Option<MailStore> {
        let mut set = Vec::new();
        if s.maildir.is_some() {
            set.push("`maildir`");
        }
        if s.imap.is_some() {
            set.push("`imap`");
        }
        if !self.one_backend(&set, path) {
            return None;
        }
        if let Some(t) = &s.maildir {
            return self
                .path_template(t, &path.key("maildir"))
                .map(MailStore::Maildir);
        }
        let imap = s.imap.as_ref()?;
        // Only the destination of a Carbonio plan has defaults.
        let carbonio = match path.last_key() {
            Some("destination") => self.carbonio.clone(),
            _ => None,
        };
        self.imap(imap, &path.key("imap"), carbonio)
            .map(MailStore::Imap)
    }

    /// An IMAP store; `carbonio` is `Some` for the destination of a Carbonio plan (holding its
    /// `destination.url`), which gives `url`, `user` and `auth` their defaults.
    pub(super) fn imap(
        &mut self,
        i: &raw::Imap,
        path: &YamlPath,
        carbonio: Option<Option<String>>,
    ) -> Option<ImapStore> {
        let timeout = self.seconds(i.timeout, &path.key("timeout"), 30);
        let default_url = carbonio.clone().flatten().and_then(|base| {
            let host = base.split_once("://").map_or(base.as_str(), |(_, h)| h);
            let host = match host.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') && p.chars().all(|c| c.is_ascii_digit()) => h,
                _ => host,
            };
            parse_imap_url(&format!("imaps://{host}"))
        });
        if i.url.is_none() && default_url.is_none() {
            let p = self.missing_key(path, "url");
            let p = if carbonio.is_some() {
                p.help("write `url`, or the Carbonio server's address once as `destination.url` (IMAP then defaults to `imaps://` its host)")
            } else {
                p
            };
            self.push(p);
            return None;
        }
        let url = i.url.as_ref().map_or(default_url, |u| {
            let p = path.key("url");
            let parsed = parse_imap_url(u.trim());
            if parsed.is_none() {
                let span = self.span(&p);
                self.push(
                    Problem::new(
                        codes::WRONG_TYPE,
                        format!("`{p}` is not an IMAP URL: `{u}`"),
                    )
                    .label(span, "expected imaps://host[:port] or imap://host[:port]")
                    .help("e.g. `imaps://mail.acme.test` (port 993) or `imap://127.0.0.1:1143`"),
                );
            }
            parsed
        });
        let user = match (&i.user, carbonio.is_some()) {
            (Some(t), _) => self.template(t, &path.key("user")),
            // The account's name: the person's address in the plan's domains.
            (None, true) => Template::parse("{primary_smtp}").ok(),
            (None, false) => {
                let p = self.missing_key(path, "user");
                self.push(p);
                None
            }
        };
        let default_auth = if carbonio.is_some() {
            raw::ImapAuth::Plain
        } else {
            raw::ImapAuth::Master
        };
        let auth = match i.auth.unwrap_or(default_auth) {
            raw::ImapAuth::Plain => ImapAuth::Plain,
            raw::ImapAuth::Master => ImapAuth::Master,
            raw::ImapAuth::Login => ImapAuth::Login,
        };
        let login = match (&i.login, auth) {
            (Some(l), _) => self.non_empty(l.clone(), &path.key("login")).map(Some),
            (None, ImapAuth::Login) => Some(None),
            (None, _) => {
                let span = self.key_span(path);
                self.push(
                    Problem::new(
                        codes::MISSING_KEY,
                        format!("`{path}` has no `login` for its admin credential"),
                    )
                    .label(span, "no admin login")
                    .help("with `auth: master` or `auth: plain`, `login` names the admin (master) user whose `password` is given"),
                );
                None
            }
        };
        let password = i
            .password
            .as_ref()
            .map(|p| self.secret(p, &path.key("password")));
        let (host, port, tls) = url?;
        let security = match (tls, i.tls) {
            (true, _) => ImapSecurity::Tls,
            (false, Some(raw::ImapTls::None)) => ImapSecurity::None,
            (false, _) => ImapSecurity::StartTls,
        };
        Some(ImapStore {
            host,
            port,
            security,
            user: user?,
            login: login?,
            password: password?,
            auth,
            ca_file: i.ca_file.as_deref().map(|f| self.resolve(f)),
            insecure: i.insecure.unwrap_or(false),
            timeout: std::time::Duration::from_secs(timeout?),
        })
    }

    pub(super) fn folders(&mut self, f: raw::Folders, path: &YamlPath) -> Option<FolderMapping> {
        let mut map: BTreeMap<String, String> = [
            ("($Inbox)", "INBOX"),
            ("($Sent)", "Sent"),
            ("($Drafts)", "Drafts"),
            ("($Trash)", "Trash"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let mut ok = true;
        for (from, to) in f.map.unwrap_or_default() {
            if to.trim().is_empty() || to.split('/').any(|l| l.is_empty()) {
                let p = path.key("map").key(&from);
                let span = self.span(&p);
                self.push(
                    Problem::new(
                        codes::EMPTY_VALUE,
                        format!("`{p}` is not a folder name: `{to}`"),
                    )
                    .label(span, "empty folder level")
                    .help("write levels separated by single `/`, e.g. `Archive/2024`"),
                );
                ok = false;
            }
            map.insert(from, to);
        }
        let separator = match f.separator {
            None => Some(None),
            Some(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some(Some(c)),
                    _ => {
                        let p = path.key("separator");
                        let span = self.span(&p);
                        self.push(
                            Problem::new(
                                codes::WRONG_TYPE,
                                format!("`{p}` must be exactly one character"),
                            )
                            .label(span, "not one character")
                            .help("e.g. `\"\\\\\"` for Notes' `Projects\\2024`"),
                        );
                        None
                    }
                }
            }
        };
        let exclude = f.exclude.unwrap_or_default();
        if !ok {
            return None;
        }
        Some(FolderMapping {
            map,
            separator: separator?,
            exclude,
        })
    }

    pub(super) fn calendar_items(
        &mut self,
        c: raw::CalendarItems,
        path: &YamlPath,
    ) -> Option<CalendarItems> {
        let source = c.source.and_then(|s| {
            let ics = s.ics?;
            self.path_template(&ics, &path.key("source").key("ics"))
        });
        let destination = c.destination.and_then(|d| {
            let at = path.key("destination");
            Some(
                match self.dav_or_folder(
                    d.caldav,
                    d.ics_folder,
                    &at,
                    ("caldav", "Calendar"),
                    "ics_folder",
                )? {
                    DavOrFolder::Dav(dav) => CalendarDestination::CalDav(dav),
                    DavOrFolder::Folder(t) => CalendarDestination::IcsFolder(t),
                },
            )
        });
        Some(CalendarItems {
            source: source?,
            destination: destination?,
        })
    }

    pub(super) fn contact_items(
        &mut self,
        c: raw::ContactItems,
        path: &YamlPath,
    ) -> Option<ContactItems> {
        let source = c.source.and_then(|s| {
            let csv = s.csv?;
            self.path_template(&csv, &path.key("source").key("csv"))
        });
        let destination = c.destination.and_then(|d| {
            let at = path.key("destination");
            Some(
                match self.dav_or_folder(
                    d.carddav,
                    d.vcard_folder,
                    &at,
                    ("carddav", "Contacts"),
                    "vcard_folder",
                )? {
                    DavOrFolder::Dav(dav) => ContactDestination::CardDav(dav),
                    DavOrFolder::Folder(t) => ContactDestination::VcardFolder(t),
                },
            )
        });
        Some(ContactItems {
            source: source?,
            destination: destination?,
        })
    }

    /// A calendar or contacts destination: exactly one of a DAV collection (`dav_key`, with the
    /// name of Carbonio's collection for it) and a folder (`folder_key`).
    pub(super) fn dav_or_folder(
        &mut self,
        dav: Option<raw::Dav>,
        folder: Option<raw::TemplateText>,
        path: &YamlPath,
        (dav_key, collection): (&str, &str),
        folder_key: &str,
    ) -> Option<DavOrFolder> {
        let mut set = Vec::new();
        if dav.is_some() {
            set.push(format!("`{dav_key}`"));
        }
        if folder.is_some() {
            set.push(format!("`{folder_key}`"));
        }
        let set: Vec<&str> = set.iter().map(String::as_str).collect();
        if !self.one_backend(&set, path) {
            return None;
        }
        match (dav, folder) {
            (Some(dav), _) => self
                .dav(&dav, &path.key(dav_key), collection)
                .map(DavOrFolder::Dav),
            (None, Some(t)) => self
                .path_template(&t, &path.key(folder_key))
                .map(DavOrFolder::Folder),
            (None, None) => None,
        }
    }

    /// A CalDAV or CardDAV collection; in a Carbonio plan with `destination.url`, `url` defaults
    /// to Carbonio's `/dav/{primary_smtp}/COLLECTION/` there.
    pub(super) fn dav(
        &mut self,
        d: &raw::Dav,
        path: &YamlPath,
        collection: &str,
    ) -> Option<DavStore> {
        let timeout = self.seconds(d.timeout, &path.key("timeout"), 30);
        let url = match (&d.url, self.carbonio.clone()) {
            (Some(u), _) => self.template(u, &path.key("url")),
            (None, Some(Some(base))) => {
                Template::parse(&format!("{base}/dav/{{primary_smtp}}/{collection}/")).ok()
            }
            (None, carbonio) => {
                let p = self.missing_key(path, "url");
                let p = if carbonio.is_some() {
                    p.help(format!(
                        "write `url`, or the Carbonio server's address once as `destination.url` (then `url` is `https://HOST/dav/{{primary_smtp}}/{collection}/`)"
                    ))
                } else {
                    p
                };
                self.push(p);
                None
            }
        };
        if let Some(u) = &d.url {
            let t = u.0.trim_start();
            if !(t.starts_with("http://") || t.starts_with("https://")) {
                let p = path.key("url");
                let span = self.span(&p);
                self.push(
                    Problem::new(codes::WRONG_TYPE, format!("`{p}` is not an http(s) URL"))
                        .label(span, "expected https://…")
                        .help("e.g. `https://dav.acme.test/{primary_smtp}/calendar/`"),
                );
                return None;
            }
        }
        let login = match &d.login {
            Some(l) => self.template(l, &path.key("login")).map(Some),
            None => Some(None),
        };
        let version = match d.vcard_version {
            None | Some(4) => Some(4),
            Some(3) => Some(3),
            Some(v) => {
                let p = path.key("vcard_version");
                let span = self.span(&p);
                self.push(
                    Problem::new(codes::UNKNOWN_VALUE, format!("`{p}` is {v}"))
                        .label(span, "not a vCard version")
                        .help("write `4` (the default) or `3`"),
                );
                None
            }
        };
        Some(DavStore {
            url: url?,
            login: login?,
            password: d
                .password
                .as_ref()
                .map(|p| self.secret(p, &path.key("password"))),
            ca_file: d.ca_file.as_deref().map(|f| self.resolve(f)),
            insecure: d.insecure.unwrap_or(false),
            timeout: std::time::Duration::from_secs(timeout?),
            vcard_version: version?,
        })
    }
}
