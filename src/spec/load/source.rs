//! The `source` section: profile, directory, scope (base, filter, include/exclude) and roles.
//!
//! Only what the plan file says is checked here; whether its DNs exist is `against`'s job.

use super::*;

impl Checker<'_> {
    pub(super) fn source(&mut self, s: raw::Source, path: &YamlPath) -> Option<Source> {
        let profile = self.required(s.profile, path, "profile").map(|p| match p {
            raw::Profile::Domino => Profile::Domino,
            raw::Profile::Ldap => Profile::Ldap,
            raw::Profile::ActiveDirectory => Profile::ActiveDirectory,
        });
        let notes_domain = s
            .notes_domain
            .and_then(|d| self.non_empty(d, &path.key("notes_domain")));
        let ldif_file_urls = file_urls(s.directory.as_ref());
        let directory = self
            .required(s.directory, path, "directory")
            .and_then(|d| self.directory(&d, &path.key("directory")));
        let base = s.base.map(|b| self.dn(&b, &path.key("base")));
        let filter = s.filter.map(|f| self.filter(&f, &path.key("filter")));
        let include = self.dn_list(s.include.as_deref(), &path.key("include"));
        let exclude = self.dn_list(s.exclude.as_deref(), &path.key("exclude"));
        self.included_and_excluded(&include, &exclude, path);
        let roles = self.roles(s.roles, &path.key("roles"));
        Some(Source {
            profile: profile?,
            notes_domain,
            directory: directory?,
            ldif_file_urls,
            base: checked(base)?,
            filter: checked(filter)?,
            include: values(include)?,
            exclude: values(exclude)?,
            roles: roles?,
            targets: Vec::new(),
        })
    }

    pub(super) fn roles(&mut self, roles: Option<raw::Roles>, path: &YamlPath) -> Option<Roles> {
        let Some(r) = roles else {
            return Some(Roles::default());
        };
        let smtp = r.smtp.map(|l| self.attr_list(&l, &path.key("smtp")));
        let short_names = r
            .short_names
            .map(|l| self.attr_list(&l, &path.key("short_names")));
        let full_names = r
            .full_names
            .map(|l| self.attr_list(&l, &path.key("full_names")));
        let given_name = r.given_name.map(|a| self.attr(&a, &path.key("given_name")));
        let surname = r.surname.map(|a| self.attr(&a, &path.key("surname")));
        Some(Roles {
            smtp: checked(smtp)?,
            short_names: checked(short_names)?,
            full_names: checked(full_names)?,
            given_name: checked(given_name)?,
            surname: checked(surname)?,
        })
    }
}
