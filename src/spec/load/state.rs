//! The `state` section: where mailplan keeps what it did — SQLite beside the plan file when
//! the section is left out, or a PostgreSQL database shared by every machine of the wave.
//!
//! Checks the file only (the URL's shape, no password in it, the password as a secret); it
//! never connects. A URL that holds a password is never echoed.

use super::*;

impl Checker<'_> {
    /// `state:`: where the state is kept. Everything about the section is checked here. The
    /// URL is never echoed when it holds a password: that is the one value that must not reach
    /// a terminal or a log.
    pub(super) fn state(&mut self, s: raw::State, path: &YamlPath) -> Option<PostgresState> {
        let Some(pg) = s.postgres else {
            let span = self.key_span(path);
            self.push(
                Problem::new(codes::MISSING_KEY, format!("`{path}` names no backend"))
                    .label(span, "no backend")
                    .help(
                        "write `postgres: { url: …, password: { env: … } }`, or leave `state` \
                         out to keep the state in SQLite beside the plan file",
                    ),
            );
            return None;
        };
        let path = path.key("postgres");
        let url_path = path.key("url");
        let url = pg.url.as_deref().map(str::trim).and_then(|u| {
            let span = self.span(&url_path);
            let invalid = |why: &str| {
                Problem::new(
                    codes::INVALID_URL,
                    format!("`{url_path}` is not a PostgreSQL URL: {why}"),
                )
                .help("e.g. `postgres://mailplan@db.acme.test:5432/migration`")
            };
            let parsed = match url::Url::parse(u) {
                Ok(parsed) if matches!(parsed.scheme(), "postgres" | "postgresql") => parsed,
                Ok(parsed) => {
                    let why = format!("its scheme is `{}`", parsed.scheme());
                    self.push(invalid(&why).label(span, "expected postgres://"));
                    return None;
                }
                Err(e) => {
                    self.push(invalid(&e.to_string()).label(span, "here"));
                    return None;
                }
            };
            let config = u.parse::<tokio_postgres::Config>();
            let in_query = parsed.query_pairs().any(|(k, _)| k == "password");
            if parsed.password().is_some()
                || in_query
                || config.as_ref().is_ok_and(|c| c.get_password().is_some())
            {
                self.push(
                    Problem::new(
                        codes::PLAIN_SECRET,
                        format!("`{url_path}` holds a password (not shown here)"),
                    )
                    .label(span, "a password in the URL")
                    .help(
                        "secrets never go in the plan file: remove it from the URL and write \
                         `password: { env: NAME }` or `password: { file: path }` beside `url`",
                    ),
                );
                return None;
            }
            match config {
                Ok(c) if c.get_hosts().is_empty() => {
                    self.push(invalid("it names no host").label(span, "no host"));
                    None
                }
                Ok(_) => Some(u.to_owned()),
                Err(e) => {
                    self.push(invalid(&e.to_string()).label(span, "here"));
                    None
                }
            }
        });
        let password = pg
            .password
            .as_ref()
            .map(|p| self.secret(p, &path.key("password")));
        Some(PostgresState {
            url: url?,
            password,
            ca_file: pg.ca_file.as_deref().map(|f| self.resolve(f)),
            insecure: pg.insecure.unwrap_or(false),
        })
    }
}
