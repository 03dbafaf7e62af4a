//! Where a directory is read from (`ldif:` or `ldap:`), connection settings and secrets, and
//! relative paths: shared by `source`, `destination` and `items`.
//!
//! Secrets are only named here, never read (that is `check_secrets`), and nothing connects.

use super::*;

/// Whether a directory's LDIF may name files with `:< file:` URLs.
pub(super) fn file_urls(d: Option<&raw::Directory>) -> bool {
    d.is_some_and(|d| d.ldif.is_some() && d.allow_file_urls == Some(true))
}

impl Checker<'_> {
    pub(super) fn directory(
        &mut self,
        d: &raw::Directory,
        path: &YamlPath,
    ) -> Option<DirectorySource> {
        // One entry per backend key that is set; `ldap` joins `ldif` here when it exists.
        let mut backends: Vec<(&str, DirectorySource)> = Vec::new();
        let mut ok = true;
        if let Some(ldif) = &d.ldif {
            let p = path.key("ldif");
            if ldif.trim().is_empty() {
                let span = self.span(&p);
                self.push(
                    Problem::new(codes::EMPTY_VALUE, format!("`{p}` is empty"))
                        .label(span, "expected the path of an LDIF file")
                        .help("relative paths start at the plan file's folder"),
                );
                ok = false;
            } else {
                backends.push(("ldif", DirectorySource::Ldif(self.resolve(ldif))));
            }
        }
        if let Some(l) = &d.ldap {
            match self.ldap(l, &path.key("ldap")) {
                Some(settings) => backends.push(("ldap", DirectorySource::Ldap(settings))),
                None => ok = false,
            }
        }
        if d.allow_file_urls.is_some() && d.ldif.is_none() {
            let p = path.key("allow_file_urls");
            let span = self.index.key_span(&p).unwrap_or_else(|| self.span(&p));
            self.push(
                Problem::new(
                    codes::INVALID_DIRECTORY,
                    format!("`{p}` is only for a directory read from an LDIF file"),
                )
                .label(span, "no `ldif:` beside it")
                .help("write it beside `ldif:`, or remove it"),
            );
            ok = false;
        }
        let span = self.index.key_span(path).unwrap_or_else(|| self.span(path));
        let valid = schema::keys_at(path).unwrap_or_default();
        let keys = valid
            .iter()
            .filter(|k| **k != "allow_file_urls")
            .map(|k| format!("`{k}: ...`"))
            .collect::<Vec<_>>();
        match backends.len() {
            0 if ok => {
                self.push(
                    Problem::new(
                        codes::INVALID_DIRECTORY,
                        format!("`{path}` names no directory backend"),
                    )
                    .label(span, "no backend")
                    .help(format!("add one of {}", join_or(&keys))),
                );
                None
            }
            1 => backends.pop().map(|b| b.1),
            0 => None,
            _ => {
                let names = backends
                    .iter()
                    .map(|b| format!("`{}`", b.0))
                    .collect::<Vec<_>>();
                self.push(
                    Problem::new(
                        codes::INVALID_DIRECTORY,
                        format!("`{path}` names {} backends", names.len()),
                    )
                    .label(span, format!("{} are all given", names.join(" and ")))
                    .help("a directory is read from exactly one backend: keep one"),
                );
                None
            }
        }
    }

    /// The folder item paths are relative to, made absolute: a path names a mailbox in the
    /// ledger, and must name it the same whatever folder mailplan is started from.
    pub(super) fn base_dir(&self) -> PathBuf {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
    }

    /// The secret at `path` (a `password` key), remembered with where it is written.
    pub(super) fn secret(&mut self, s: &raw::Secret, path: &YamlPath) -> Secret {
        let (secret, inner) = match s {
            raw::Secret::Env(name) => (Secret::Env(name.clone()), "env"),
            raw::Secret::File(f) => (Secret::File(self.resolve(f)), "file"),
        };
        let span = self
            .index
            .value_span(&path.key(inner))
            .unwrap_or_else(|| self.span(path));
        self.secrets.push(SecretUse {
            secret: secret.clone(),
            key: path.to_string(),
            span: (span.start, span.len()).into(),
        });
        secret
    }

    /// The connection settings of a live LDAP directory; every problem is reported.
    pub(super) fn ldap(&mut self, l: &raw::Ldap, path: &YamlPath) -> Option<LdapSettings> {
        let url = self.required(l.url.clone(), path, "url").and_then(|u| {
            let p = path.key("url");
            let u = self.non_empty(u, &p)?;
            let scheme = u.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            let host = u.split_once("://").map(|(_, rest)| rest).unwrap_or("");
            if !matches!(scheme.as_deref(), Some("ldap" | "ldaps" | "ldapi"))
                || host.is_empty()
                || host.starts_with('/')
                || host.starts_with(':')
            {
                let span = self.span(&p);
                self.push(
                    Problem::new(
                        codes::INVALID_URL,
                        format!("`{p}` is not an LDAP server URL"),
                    )
                    .label(
                        span,
                        "expected ldap://host[:port], ldaps://host[:port] or ldapi://socket",
                    )
                    .help("write e.g. `ldaps://dc1.example.com` or `ldap://127.0.0.1:389`"),
                );
                return None;
            }
            Some(u)
        });
        // A bind name is a DN, or (Active Directory) a userPrincipalName or DOMAIN\user; only
        // something that looks like a DN is held to DN syntax.
        let bind_dn = match &l.bind_dn {
            None => Some(None),
            Some(b) => {
                let p = path.key("bind_dn");
                match self.non_empty(b.clone(), &p) {
                    None => None,
                    Some(b) if b.contains('=') => {
                        self.dn(&raw::DnText(b.clone()), &p).map(|_| Some(b))
                    }
                    Some(b) if b.contains('@') || b.contains('\\') => Some(Some(b)),
                    Some(_) => {
                        let span = self.span(&p);
                        self.push(
                            Problem::new(
                                codes::INVALID_DN,
                                format!("`{p}` is neither a DN nor a userPrincipalName"),
                            )
                            .label(span, "not a DN")
                            .help(
                                "write the bind user's DN (`CN=svc-mailplan,OU=Service,DC=acme,DC=com`) or, on Active Directory, its userPrincipalName (`svc-mailplan@acme.com`)",
                            ),
                        );
                        None
                    }
                }
            }
        };
        let password = l
            .password
            .as_ref()
            .map(|s| self.secret(s, &path.key("password")));
        if password.is_some() && l.bind_dn.is_none() {
            let p = path.key("password");
            let span = self.key_span(&p);
            self.push(
                Problem::new(
                    codes::MISSING_KEY,
                    format!("`{p}` is given without `{}`", path.key("bind_dn")),
                )
                .label(span, "a password for nobody")
                .help("add `bind_dn:` (who the password belongs to), or remove the password for an anonymous bind"),
            );
        }
        let base = self
            .required(l.base.clone(), path, "base")
            .and_then(|b| self.dn(&b, &path.key("base")));
        let filter = match &l.filter {
            None => Some("(objectClass=*)".to_string()),
            Some(f) => self
                .filter(f, &path.key("filter"))
                .map(|_| f.0.trim().to_string()),
        };
        let scope = match l.scope.unwrap_or(raw::Scope::Sub) {
            raw::Scope::Base => LdapScope::Base,
            raw::Scope::One => LdapScope::One,
            raw::Scope::Sub => LdapScope::Sub,
        };
        let positive = |cx: &mut Self, value: Option<u64>, key: &str, default: u64| {
            let v = value.unwrap_or(default);
            if v == 0 {
                let p = path.key(key);
                let span = cx.span(&p);
                cx.push(
                    Problem::new(codes::EMPTY_VALUE, format!("`{p}` must be at least 1"))
                        .label(span, "zero")
                        .help(format!("leave it out for the default ({default})")),
                );
                return None;
            }
            Some(v)
        };
        let page_size = positive(self, l.page_size.map(u64::from), "page_size", 500);
        let timeout = positive(self, l.timeout, "timeout", 30);
        let ca_file = l.ca_file.as_ref().map(|c| {
            let p = path.key("ca_file");
            self.non_empty(c.clone(), &p).map(|c| self.resolve(&c))
        });
        let starttls = l.starttls.unwrap_or(false);
        if starttls
            && url
                .as_deref()
                .is_some_and(|u| u.to_ascii_lowercase().starts_with("ldaps:"))
        {
            let p = path.key("starttls");
            let span = self.span(&p);
            self.push(
                Problem::new(
                    codes::INVALID_URL,
                    format!("`{p}` cannot be used with an `ldaps://` URL"),
                )
                .label(span, "the connection is already TLS")
                .help("use `ldap://` with `starttls: true`, or `ldaps://` alone"),
            );
            return None;
        }
        let sasl_external = matches!(l.sasl, Some(raw::SaslMechanism::External));
        if sasl_external && (l.bind_dn.is_some() || l.password.is_some()) {
            let p = path.key("sasl");
            let span = self.span(&p);
            self.push(
                Problem::new(
                    codes::INVALID_DIRECTORY,
                    format!("`{p}` cannot be combined with `bind_dn` or `password`"),
                )
                .label(span, "the connection's own identity is used")
                .help("remove `bind_dn:` and `password:` for a SASL EXTERNAL bind, or remove `sasl:` for a simple bind"),
            );
            return None;
        }
        Some(LdapSettings {
            url: url?,
            bind_dn: bind_dn?,
            password,
            base: base?,
            filter: filter?,
            scope,
            page_size: u32::try_from(page_size?).unwrap_or(u32::MAX),
            timeout: std::time::Duration::from_secs(timeout?),
            starttls,
            ca_file: checked(ca_file)?,
            insecure: l.insecure.unwrap_or(false),
            sasl_external,
        })
    }

    /// Paths in the plan are relative to the plan file's folder.
    pub(super) fn resolve(&self, written: &str) -> PathBuf {
        let p = Path::new(written);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new("")).join(p)
        }
    }
}
