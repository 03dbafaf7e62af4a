//! The `destination` section: flavor, directory, container, domains, mailbox database,
//! classification rules and the attribute mapping; for `carbonio`, the class of service and how
//! accounts are provisioned (each key only for the flavors that use it).
//!
//! Checks the file only; whether the directory holds these objects is checked at plan time.

use super::*;

/// Where Carbonio keeps the accounts of `domain`: `ou=people` under the domain's `dc=` entry.
fn people_container(domain: &str) -> Dn {
    let mut dn = Dn::root();
    for label in domain.rsplit('.') {
        dn = dn.child("dc", label);
    }
    dn.child("ou", "people")
}

/// Checks and lower-cases a mail domain; on failure, (what is wrong, how to fix it).
pub(super) fn check_domain(written: &str) -> Result<String, (String, String)> {
    let d = written.trim().to_ascii_lowercase();
    let err = |what: &str, help: &str| Err((what.to_string(), help.to_string()));
    if d.is_empty() {
        return err("empty", "write a domain such as `acme.com`");
    }
    if let Some(rest) = d.strip_prefix('@') {
        return Err((
            "starts with `@`".into(),
            format!("write the domain without `@`: `{rest}`"),
        ));
    }
    if d.contains('@') {
        return err(
            "looks like an e-mail address",
            "write only the part after `@`",
        );
    }
    if !d.is_ascii() {
        return err(
            "contains non-ASCII letters",
            "write an internationalised domain in its ASCII (`xn--`) form",
        );
    }
    if d.ends_with('.') {
        return err("ends with `.`", "remove the trailing dot");
    }
    if d.len() > 253 {
        return err("longer than 253 characters", "a DNS name has at most 253");
    }
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 {
        return err(
            "has no `.`",
            "a mail domain has at least two labels, e.g. `acme.com`",
        );
    }
    for label in &labels {
        if label.is_empty() {
            return err("has an empty label (`..`)", "remove the extra dot");
        }
        if label.len() > 63 {
            return err(
                "has a label longer than 63 characters",
                "each dot-separated part of a DNS name has at most 63 characters",
            );
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err((
                format!("contains `{c}`"),
                "a DNS label has only letters, digits and `-`".into(),
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return err(
                "has a label that starts or ends with `-`",
                "a DNS label cannot start or end with `-`",
            );
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return err(
            "is an IP address, not a domain",
            "mail domains are names, e.g. `acme.com`",
        );
    }
    Ok(d)
}

impl Checker<'_> {
    pub(super) fn destination(
        &mut self,
        d: raw::Destination,
        path: &YamlPath,
    ) -> Option<Destination> {
        let flavor = self.required(d.flavor, path, "flavor").map(|f| match f {
            raw::Flavor::ActiveDirectory => Flavor::ActiveDirectory,
            raw::Flavor::Ldap => Flavor::Ldap,
            raw::Flavor::Carbonio => Flavor::Carbonio,
        });
        if flavor == Some(Flavor::Carbonio) {
            let url = d.url.as_ref().and_then(|u| {
                let p = path.key("url");
                self.server_url(u, &p)
            });
            self.carbonio = Some(url);
        } else {
            self.only_for_carbonio(d.url.is_some(), path, "url");
        }
        let ldif_file_urls = file_urls(d.directory.as_ref());
        let directory = self
            .required(d.directory, path, "directory")
            .and_then(|dir| self.directory(&dir, &path.key("directory")));
        let domains = self.domains(d.domains.as_deref().unwrap_or(&[]), &path.key("domains"));
        let container = if flavor == Some(Flavor::Carbonio) {
            // Carbonio names an account's entry from its address, under its domain's
            // `ou=people`: the container is the first domain's.
            self.only_for_other_flavors(d.container.is_some(), path, "container");
            self.only_for_other_flavors(d.mailbox_database.is_some(), path, "mailbox_database");
            self.only_for_other_flavors(d.exchange_org.is_some(), path, "exchange_org");
            match domains.as_deref() {
                Some([first, ..]) => Some(people_container(first)),
                Some([]) => {
                    let p = self.missing_key(path, "domains").help(
                        "the carbonio flavor needs the mail domains (they must exist in \
                         Carbonio), e.g. `domains: [acme.com]`; the first is where new \
                         accounts go",
                    );
                    self.push(p);
                    None
                }
                None => None,
            }
        } else {
            self.only_for_carbonio(d.cos.is_some(), path, "cos");
            self.only_for_carbonio(d.provisioning.is_some(), path, "provisioning");
            self.only_for_carbonio(d.password_policy.is_some(), path, "password_policy");
            self.required(d.container, path, "container")
                .and_then(|c| self.container(&c, &path.key("container")))
        };
        let mailbox_database = d
            .mailbox_database
            .filter(|_| flavor != Some(Flavor::Carbonio))
            .map(|m| self.dn_entry(&m, &path.key("mailbox_database")));
        let exchange_org = d
            .exchange_org
            .filter(|_| flavor != Some(Flavor::Carbonio))
            .and_then(|o| self.non_empty(o, &path.key("exchange_org")));
        let carbonio = if flavor == Some(Flavor::Carbonio) {
            let password_policy = match d.password_policy {
                Some(raw::PasswordPolicy::External) => PasswordPolicy::External,
                Some(raw::PasswordPolicy::Random) | None => PasswordPolicy::Random,
            };
            self.carbonio(d.cos, d.provisioning, path).map(|c| {
                Some(Carbonio {
                    password_policy,
                    ..c
                })
            })
        } else {
            Some(None)
        };
        let classify = self.classify(d.classify, &path.key("classify"));
        let mapping = self.mapping(d.mapping.unwrap_or_default(), &path.key("mapping"));
        Some(Destination {
            flavor: flavor?,
            directory: directory?,
            ldif_file_urls,
            container: container?,
            domains: domains?,
            mailbox_database: checked(mailbox_database)?,
            exchange_org,
            classify: classify?,
            mapping: mapping?,
            carbonio: carbonio?,
        })
    }

    /// Carbonio's web address (`https://host[:port]`, no path), without a trailing `/`.
    fn server_url(&mut self, written: &str, path: &YamlPath) -> Option<String> {
        let u = written.trim().trim_end_matches('/');
        let rest = u
            .strip_prefix("https://")
            .or_else(|| u.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains(['/', '@', '{', '}', ' ']) => {
                Some(u.to_string())
            }
            _ => {
                let span = self.span(path);
                self.push(
                    Problem::new(
                        codes::INVALID_URL,
                        format!("`{path}` is not the web address of a Carbonio server"),
                    )
                    .label(span, "expected https://host[:port]")
                    .help("write the address its users open, e.g. `https://mail.acme.com`, with no path"),
                );
                None
            }
        }
    }

    /// A key of the `carbonio` flavor written for another flavor.
    fn only_for_carbonio(&mut self, written: bool, path: &YamlPath, key: &str) {
        if written {
            let p = path.key(key);
            let span = self.key_span(&p);
            self.push(
                Problem::new(
                    codes::WRONG_FLAVOR,
                    format!("`{p}` is only for `flavor: carbonio`"),
                )
                .label(span, "not used by this flavor")
                .help("remove it, or write `flavor: carbonio` if the destination is Carbonio"),
            );
        }
    }

    /// A key of the other flavors written for `carbonio`.
    fn only_for_other_flavors(&mut self, written: bool, path: &YamlPath, key: &str) {
        if written {
            let p = path.key(key);
            let span = self.key_span(&p);
            let help = if key == "container" {
                "Carbonio places each account under `ou=people` of its domain: remove it"
            } else {
                "Carbonio has no such setting: remove it (the class of service is `cos`)"
            };
            self.push(
                Problem::new(
                    codes::WRONG_FLAVOR,
                    format!("`{p}` is not used by `flavor: carbonio`"),
                )
                .label(span, "not for Carbonio")
                .help(help),
            );
        }
    }

    /// `cos` and `provisioning` of a Carbonio destination.
    fn carbonio(
        &mut self,
        cos: Option<String>,
        provisioning: Option<raw::Provisioning>,
        path: &YamlPath,
    ) -> Option<Carbonio> {
        let cos = match cos {
            Some(c) => self.non_empty(c, &path.key("cos")),
            None => Some("default".to_string()),
        };
        let wait = provisioning.as_ref().and_then(|p| p.wait);
        let auto_wait = self.seconds(wait, &path.key("provisioning").key("wait"), 960);
        let provisioning = match provisioning {
            None => Some(None),
            Some(p) => self.provisioning(p, &path.key("provisioning")).map(Some),
        };
        Some(Carbonio {
            cos: cos?,
            password_policy: PasswordPolicy::Random,
            provisioning: provisioning?,
            auto_wait: std::time::Duration::from_secs(auto_wait?),
        })
    }

    fn provisioning(&mut self, p: raw::Provisioning, path: &YamlPath) -> Option<Provisioning> {
        if p.wait.is_some() && p.soap.is_some() && p.auto.is_none() {
            // How long Auto Provisioning may take to create an account: mailplan's own SOAP
            // calls are done when they answer, so a `wait` here would be silently ignored.
            let w = path.key("wait");
            let span = self.key_span(&w);
            self.push(
                Problem::new(
                    codes::CONFLICTING_KEYS,
                    format!("`{w}` is only for `auto: true`"),
                )
                .label(span, "not with `soap`")
                .help(
                    "`wait` is how long to wait for Carbonio's Auto Provisioning to create each \
                     account; with `soap:` mailplan creates them itself and waits for each answer \
                     (bounded by `soap.timeout`): remove `wait`",
                ),
            );
            return None;
        }
        match (p.soap, p.auto) {
            (Some(soap), None) => self.soap(&soap, &path.key("soap")).map(Provisioning::Soap),
            (None, Some(true)) => Some(Provisioning::Auto),
            (None, Some(false)) => {
                let p = path.key("auto");
                let span = self.span(&p);
                self.push(
                    Problem::new(codes::UNKNOWN_VALUE, format!("`{p}` is false"))
                        .label(span, "only `true` means something here")
                        .help(
                            "write `auto: true` to let Auto Provisioning create the accounts, \
                             or `soap:` for mailplan to create them",
                        ),
                );
                None
            }
            (Some(_), Some(_)) => {
                let span = self.key_span(&path.key("auto"));
                self.push(
                    Problem::new(
                        codes::CONFLICTING_KEYS,
                        format!("`{path}` has both `soap` and `auto`"),
                    )
                    .label(span, "and `soap` too")
                    .help(
                        "choose one: `soap:` (mailplan creates the accounts) or `auto: true` \
                         (Carbonio's Auto Provisioning does)",
                    ),
                );
                None
            }
            (None, None) => {
                let span = self.span(path);
                self.push(
                    Problem::new(codes::MISSING_KEY, format!("`{path}` says nothing"))
                        .label(span, "no `soap` and no `auto`")
                        .help(
                            "write `soap: { url, user, password }` or `auto: true`, or leave \
                             `provisioning` out to plan only",
                        ),
                );
                None
            }
        }
    }

    fn soap(&mut self, s: &raw::Soap, path: &YamlPath) -> Option<SoapSettings> {
        let timeout = self.seconds(s.timeout, &path.key("timeout"), 30);
        let url = self
            .required(s.url.clone(), path, "url")
            .and_then(|u| self.non_empty(u, &path.key("url")));
        let url = url.and_then(|u| {
            if u.starts_with("https://") || u.starts_with("http://") {
                Some(u)
            } else {
                let p = path.key("url");
                let span = self.span(&p);
                self.push(
                    Problem::new(codes::INVALID_URL, format!("`{p}` is not an http(s) URL"))
                        .label(span, "expected https://…")
                        .help("e.g. `https://mail.acme.com:7071/service/admin/soap`"),
                );
                None
            }
        });
        let user = self
            .required(s.user.clone(), path, "user")
            .and_then(|u| self.non_empty(u, &path.key("user")));
        let password = self
            .required(s.password.as_ref(), path, "password")
            .map(|p| self.secret(p, &path.key("password")));
        Some(SoapSettings {
            url: url?,
            user: user?,
            password: password?,
            ca_file: s.ca_file.as_deref().map(|f| self.resolve(f)),
            insecure: s.insecure.unwrap_or(false),
            timeout: std::time::Duration::from_secs(timeout?),
        })
    }

    pub(super) fn classify(
        &mut self,
        c: Option<raw::Classify>,
        path: &YamlPath,
    ) -> Option<Classify> {
        let Some(c) = c else {
            return Some(Classify::default());
        };
        let mut one = |f: Option<raw::FilterText>, key: &str| {
            checked(f.map(|f| self.filter(&f, &path.key(key))))
        };
        let mailbox_user = one(c.mailbox_user, "mailbox_user");
        let mail_enabled_user = one(c.mail_enabled_user, "mail_enabled_user");
        let nt_account = one(c.nt_account, "nt_account");
        let contact = one(c.contact, "contact");
        let group = one(c.group, "group");
        Some(Classify {
            mailbox_user: mailbox_user?,
            mail_enabled_user: mail_enabled_user?,
            nt_account: nt_account?,
            contact: contact?,
            group: group?,
        })
    }

    pub(super) fn mapping(
        &mut self,
        mapping: BTreeMap<String, Option<raw::TemplateText>>,
        path: &YamlPath,
    ) -> Option<BTreeMap<AttrName, Option<Template>>> {
        let mut out = BTreeMap::new();
        let mut seen: BTreeMap<AttrName, YamlPath> = BTreeMap::new();
        let mut ok = true;
        // In file order, so the second spelling of an attribute is the one reported.
        let mut entries: Vec<_> = mapping.into_iter().collect();
        entries.sort_by_key(|(k, _)| self.index.key_span(&path.key(k)).map(|s| s.start));
        for (key, template) in entries {
            let key_path = path.key(&key);
            let key_span = self.key_span(&key_path);
            let attr = match AttrName::new(&key) {
                Ok(a) => Some(a),
                Err(e) => {
                    self.push(
                        Problem::new(
                            codes::INVALID_ATTRIBUTE,
                            format!("`{key}` in `{path}` is not an attribute name"),
                        )
                        .label(key_span.clone(), e.to_string())
                        .help(ATTR_HELP),
                    );
                    None
                }
            };
            let template = checked(template.map(|t| self.template(&t, &key_path)));
            if let Some(attr) = &attr {
                if let Some(first) = seen.get(attr) {
                    let first_span = self.key_span(first);
                    self.push(
                        Problem::new(
                            codes::DUPLICATE_ATTRIBUTE,
                            format!("`{key}` is mapped twice in `{path}`"),
                        )
                        .label(key_span, "mapped again here")
                        .label(first_span, "first mapped here")
                        .help("attribute names ignore case: keep one of the two"),
                    );
                    ok = false;
                    continue;
                }
                seen.insert(attr.clone(), key_path.clone());
            }
            match (attr, template) {
                (Some(a), Some(t)) => {
                    out.insert(a, t);
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn domains(
        &mut self,
        domains: &[raw::DomainText],
        path: &YamlPath,
    ) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut ok = true;
        for (i, d) in domains.iter().enumerate() {
            let item = path.index(i);
            let span = self.span(&item);
            match check_domain(&d.0) {
                Ok(domain) => {
                    if let Some(&first) = seen.get(&domain) {
                        let first_span = self.span(&path.index(first));
                        self.push(
                            Problem::new(
                                codes::DUPLICATE_DOMAIN,
                                format!("domain `{domain}` is listed twice in `{path}`"),
                            )
                            .label(span, "listed again here")
                            .label(first_span, "first listed here")
                            .help("domain names ignore case: keep one of the two"),
                        );
                        ok = false;
                    } else {
                        seen.insert(domain.clone(), i);
                        out.push(domain);
                    }
                }
                Err((reason, help)) => {
                    self.push(
                        Problem::new(
                            codes::INVALID_DOMAIN,
                            format!("`{}` in `{path}` is not a valid mail domain", d.0),
                        )
                        .label(span, reason)
                        .help(help),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}
