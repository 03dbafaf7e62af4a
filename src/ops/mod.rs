//! The operations behind the commands, one module per command: `plan` (validate, plan, save),
//! `show` (render a plan that exists: show, graph, report), `apply` (prepare, review, execute),
//! `state` (what the state database holds, restore) and `generate`. This file holds what they
//! share: the errors, reading the plan file and directories, the history and state folder, and
//! saved plans.
//!
//! This is where I/O happens (reading the plan file and directories), so that `matching` and
//! `plan` stay pure and the CLI stays thin: an operation returns what a command has to say (an
//! [`Outcome`], a plan to render, an [`apply::Session`] to review) and the CLI prints it and
//! chooses the exit code. Nothing here parses arguments or asks at a terminal. Warnings and
//! progress go to standard error where they arise, as everywhere in mailplan (an apply's through
//! `crate::apply::Reporter`); a command's result does not. Errors are typed and carry what miette
//! needs to show the offending file, line and column.

pub mod apply;
pub mod generate;
pub mod interactive;
pub mod plan;
pub mod show;
pub mod state;
pub mod verify;
pub mod worker;

pub use apply::{
    Prepared, apply, apply_runtime, apply_with_items, prepare_plan_file, prepare_saved,
    settle_merges, settled_merges,
};
pub use plan::{make_plan, save_plan};
pub use state::prepare_restore;

use std::path::{Path, PathBuf};

use miette::{Diagnostic, SourceSpan};

use crate::directory::{Entry, Snapshot, ldif};
use crate::matching;
use crate::plan::graph::{ActionGraph, GraphError};
use crate::plan::saved::{SavedPlan, SavedPlanError};
use crate::plan::{History, PlanError};
use crate::spec::{self, DirectorySource, PlanFileError, Spec};
use crate::state::Location;

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    #[error(transparent)]
    #[diagnostic(transparent)]
    PlanFile(#[from] Box<PlanFileError>),
    #[error(
        "apply into Carbonio needs its live directory: `destination.directory` is an LDIF export, which shows no changes made since, so nothing was written"
    )]
    #[diagnostic(
        code(mailplan::carbonio_export),
        help(
            "`mailplan plan` works on the export; to apply, point `destination.directory` at Carbonio's LDAP (`ldap: {{ url, bind_dn, password, base }}`)"
        )
    )]
    CarbonioExport,
    #[error(
        "apply into Carbonio needs to know how accounts are created: the plan has no `destination.provisioning`, so nothing was written"
    )]
    #[diagnostic(
        code(mailplan::carbonio_provisioning),
        help(
            "write `provisioning: {{ soap: {{ url, user, password }} }}` for mailplan to create them through the admin API, or `provisioning: {{ auto: true }}` when Carbonio's Auto Provisioning does"
        )
    )]
    CarbonioProvisioning,
    // `error` rather than `source`, as for `Ldap`.
    #[error("Carbonio destination: {error}")]
    #[diagnostic(
        code(mailplan::carbonio),
        help(
            "check `destination.provisioning.soap` (url, user, password, ca_file) and `destination.directory`; nothing was written"
        )
    )]
    Carbonio {
        error: crate::apply::carbonio::CarbonioError,
    },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Ldif(#[from] Box<LdifFileError>),
    #[error("cannot read {what} `{path}`: {source}")]
    #[diagnostic(
        code(mailplan::io),
        help("check that the path is right (paths in a plan file are relative to the plan file)")
    )]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    // `error` rather than `source`: the message already says everything, and a source would
    // make miette print it a second time as the cause.
    #[error("{which} directory: {error}")]
    #[diagnostic(code(mailplan::ldap), help("{}", error.help()))]
    Ldap {
        which: &'static str,
        error: crate::directory::ldap::LdapError,
    },
    #[error("cannot write `{path}`: {source}")]
    #[diagnostic(code(mailplan::io))]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{which} directory `{path}` has the entry `{dn}` twice")]
    #[diagnostic(
        code(mailplan::directory::duplicate),
        help("an export must hold each DN once; remove the duplicate record")
    )]
    Duplicate {
        which: &'static str,
        path: PathBuf,
        dn: String,
    },
    #[error(transparent)]
    #[diagnostic(
        code(mailplan::plan::preconditions),
        help("create what is missing at the destination, or correct the plan file")
    )]
    Preconditions(#[from] PlanError),
    #[error("internal error: the planned actions do not form a valid graph: {0}")]
    #[diagnostic(
        code(mailplan::plan::graph),
        help("this is a bug in mailplan; please report it with the plan file")
    )]
    Graph(#[from] GraphError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Saved(#[from] SavedPlanError),
    #[error("cannot write the plan as a `carbonio prov` batch")]
    #[diagnostic(
        code(mailplan::carbonio_prov),
        help(
            "`--format carbonio-prov` is for plans whose destination is `flavor: carbonio`; use `--format text` or `--format json` for the others"
        )
    )]
    CarbonioProv(#[from] crate::render::carbonio_prov::ProvError),
    #[error("the plan file `{}` changed since `{}` was made from it", plan_file.display(), saved.display())]
    #[diagnostic(
        code(mailplan::apply::plan_file_changed),
        help("a saved plan is applied only as reviewed: make and review it again with `mailplan plan {} --out {}`", plan_file.display(), saved.display())
    )]
    PlanFileChanged { saved: PathBuf, plan_file: PathBuf },
    #[error(transparent)]
    #[diagnostic(transparent)]
    State(#[from] crate::state::StateError),
    #[error("no backup of `{0}` in the state database")]
    #[diagnostic(
        code(mailplan::state::no_backup),
        help("`mailplan state backups PLAN.yaml` lists the entries that have backups")
    )]
    NoBackup(String),
    #[error("the backup of `{dn}` cannot be read: {message}")]
    #[diagnostic(code(mailplan::state::bad_backup))]
    BadBackup { dn: String, message: String },
    #[error("there is no run {0} in the state database")]
    #[diagnostic(
        code(mailplan::state::no_run),
        help("`mailplan state list PLAN.yaml` lists the runs")
    )]
    NoRun(i64),
    #[error("run {run} was already undone by run {by}")]
    #[diagnostic(
        code(mailplan::state::already_undone),
        help(
            "undoing it again would find nothing of it left; to take back the undo, undo run {by}"
        )
    )]
    AlreadyUndone { run: i64, by: i64 },
    #[error(transparent)]
    #[diagnostic(
        code(mailplan::apply::destination_locked),
        help(
            "one destination takes one writer at a time: wait for that apply to finish, then run this one again (it finds what the other changed); the lock goes with its process, so a killed apply does not hold it"
        )
    )]
    DestinationLocked(crate::lockfile::LockError),
    #[error("--target `{target}` is not a DN: {reason}")]
    #[diagnostic(
        code(mailplan::target::invalid),
        help(
            "give the source person's DN as the plan shows it, e.g. --target 'CN=John Smith,OU=Sales,O=Acme'"
        )
    )]
    TargetNotADn { target: String, reason: String },
    #[error("--target `{0}` is not a person of this wave")]
    #[diagnostic(
        code(mailplan::target::not_in_wave),
        help(
            "a target must be a source entry that the plan file's source base, filter, include and exclude make a person of the wave; `mailplan plan PLAN.yaml` without --target lists them all"
        )
    )]
    TargetNotInWave(String),
    #[error("--target cannot narrow a saved plan")]
    #[diagnostic(
        code(mailplan::target::saved_plan),
        help(
            "a saved plan is applied exactly as it was reviewed: make a targeted one with `mailplan plan PLAN.yaml --target DN --out FILE`, review it, and apply that"
        )
    )]
    TargetOnSavedPlan,
    #[error(
        "--state-dir names a folder, but the plan file keeps its state in PostgreSQL (`state: postgres:`)"
    )]
    #[diagnostic(
        code(mailplan::state::two_places),
        help(
            "leave out --state-dir to use the database the plan file names, or remove the plan file's `state:` section to keep the state in SQLite"
        )
    )]
    StateDirWithPostgres,
    #[error("cannot read the password of the PostgreSQL state (state.postgres.password): {0}")]
    #[diagnostic(
        code(mailplan::state::secret),
        help(
            "set the environment variable or create the file that `state.postgres.password` names"
        )
    )]
    StateSecret(crate::spec::SecretError),
    #[error("work units need a PostgreSQL state: this plan file keeps its state in SQLite")]
    #[diagnostic(
        code(mailplan::state::needs_postgres),
        help(
            "add a `state: postgres:` section (url and password) to the plan file so that workers on several machines share the work; with SQLite, `mailplan apply` copies the items itself"
        )
    )]
    NeedsPostgres,
    #[error("`state set-cap` needs a PostgreSQL state: this plan file keeps its state in SQLite")]
    #[diagnostic(
        code(mailplan::state::caps_need_postgres),
        help(
            "with SQLite one apply copies the items and the plan file's `items.connections` caps hold within it: edit the plan file; to change a cap while workers run, keep the state in PostgreSQL (`state: postgres:`)"
        )
    )]
    CapsNeedPostgres,
    #[error("`{endpoint}` is not an endpoint this plan file's stores connect to")]
    #[diagnostic(code(mailplan::state::unknown_endpoint), help("{used}"))]
    UnknownEndpoint { endpoint: String, used: String },
    #[error("a connection cap must be at least 1, not {0}")]
    #[diagnostic(
        code(mailplan::state::zero_cap),
        help(
            "a cap is the most connections mailplan may hold to the endpoint at once; to pause the copies, stop the workers (each finishes its batch in flight)"
        )
    )]
    ZeroCap(u32),
    #[error("the worker could not go on: {0}")]
    #[diagnostic(code(mailplan::worker))]
    Worker(String),
    #[error(transparent)]
    #[diagnostic(transparent)]
    TooManyDeletes(#[from] Box<crate::apply::guard::TooManyDeletes>),
    #[error("apply needs your confirmation, and there is no terminal to ask at")]
    #[diagnostic(
        code(mailplan::apply::no_terminal),
        help(
            "run it at a terminal and answer `yes`, pass --auto-approve, or apply a reviewed saved plan (`mailplan apply FILE`)"
        )
    )]
    NotConfirmed,
    #[error("`{}` is a saved plan; --interactive asks about the soft candidates of a plan file", .0.display())]
    #[diagnostic(
        code(mailplan::interactive::saved_plan),
        help(
            "run `mailplan plan PLAN.yaml --interactive` on the YAML plan file the saved plan was made from, then save and review the plan again"
        )
    )]
    InteractiveSavedPlan(PathBuf),
    #[error("plan --interactive asks at a terminal, and there is none")]
    #[diagnostic(
        code(mailplan::interactive::no_terminal),
        help(
            "run it at a terminal, or write the answers into the plan file's `matching.confirmed` and `matching.ignore` by hand"
        )
    )]
    NoTerminalToAsk,
    #[error("the plan file `{}` changed while the questions were answered; nothing was written", .0.display())]
    #[diagnostic(
        code(mailplan::interactive::plan_file_changed),
        help("run `mailplan plan PLAN.yaml --interactive` again on the file as it is now")
    )]
    PlanFileChangedWhileAsking(PathBuf),
    #[error("cannot add the answers to `{}`: {message}; nothing was written", path.display())]
    #[diagnostic(
        code(mailplan::interactive::cannot_edit),
        help(
            "write the answers into `matching.confirmed` (source and destination) and `matching.ignore` (destination) by hand"
        )
    )]
    EditPlanFile { path: PathBuf, message: String },
}

impl From<PlanFileError> for Error {
    fn from(e: PlanFileError) -> Self {
        Error::PlanFile(Box::new(e))
    }
}

/// A malformed LDIF file, shown at its line.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{which} directory `{path}`: line {line}: {message}")]
#[diagnostic(
    code(mailplan::ldif::syntax),
    help(
        "fix the LDIF (RFC 2849) at that line; values that are not plain ASCII must be written `attr:: <base64>`"
    )
)]
pub struct LdifFileError {
    pub which: &'static str,
    pub path: String,
    pub line: usize,
    pub message: String,
    #[source_code]
    pub src: crate::snippet::Snippet,
    #[label("here")]
    pub span: SourceSpan,
}

/// What a command has to say when it is done: text for standard output, a note for standard
/// error, and whether it succeeded. The CLI prints both and maps `ok` to the exit code.
#[derive(Debug)]
pub struct Outcome {
    pub out: String,
    pub note: Option<String>,
    pub ok: bool,
}

impl Outcome {
    /// Text for standard output, and success.
    pub fn out(out: String) -> Self {
        Outcome {
            out,
            note: None,
            ok: true,
        }
    }

    /// A note for standard error, and success.
    pub fn note(note: String) -> Self {
        Outcome {
            out: String::new(),
            note: Some(note),
            ok: true,
        }
    }
}

/// Everything a plan is computed from.
pub struct Inputs {
    pub spec: Spec,
    pub source: Snapshot,
    pub destination: Snapshot,
    /// What earlier applies left unfinished (empty until read from a state database).
    pub history: History,
    /// Item inventories by source person; empty until `gather_items` ran.
    pub inventories: crate::items::Inventories,
    /// What matching works out first, worked out while a directory was still being read
    /// (`load_inputs`): the wave's persons, and a live destination's classes and lookups. The
    /// first plan made from these inputs takes it; a later one works it out again, which gives
    /// the same: it depends only on the plan file and the snapshots.
    prepared: std::sync::Mutex<Option<matching::Prepared>>,
}

impl Inputs {
    /// The plan file and both directories, with no history or inventories yet.
    pub fn new(spec: Spec, source: Snapshot, destination: Snapshot) -> Self {
        Inputs {
            spec,
            source,
            destination,
            history: History::default(),
            inventories: Default::default(),
            prepared: std::sync::Mutex::new(None),
        }
    }

    /// What matching worked out early, if it is still there to take.
    pub fn take_prepared(&self) -> matching::Prepared {
        self.prepared
            .lock()
            .ok()
            .and_then(|mut p| p.take())
            .unwrap_or_default()
    }
}

/// Reads and validates the plan file.
pub fn load_spec(path: &Path) -> Result<Spec, Error> {
    Ok(spec::load(path)?)
}

/// Reads one directory as the plan file describes it. `file_urls`: the plan file allows the
/// LDIF's `:< file:` values (read from its folder only).
pub fn load_directory(
    which: &'static str,
    source: &DirectorySource,
    file_urls: bool,
) -> Result<Snapshot, Error> {
    match source {
        DirectorySource::Ldif(path) => {
            let bytes = std::fs::read(path).map_err(|e| Error::Read {
                what: "LDIF file",
                path: path.clone(),
                source: e,
            })?;
            let folder = path.parent().map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            });
            let located = |e: ldif::LdifError| {
                // The text as shown: a byte that is not UTF-8 as `?`, every offset the file's.
                let text: String = bytes
                    .utf8_chunks()
                    .flat_map(|c| {
                        c.valid()
                            .chars()
                            .chain(std::iter::repeat_n('?', c.invalid().len()))
                    })
                    .collect();
                let span = match e.column {
                    Some(column) => {
                        let line = line_span(&text, e.line);
                        SourceSpan::new((line.offset() + column - 1).into(), 1)
                    }
                    None => line_span(&text, e.line),
                };
                Box::new(LdifFileError {
                    which,
                    path: path.display().to_string(),
                    line: e.line,
                    message: e.message.clone(),
                    src: crate::snippet::Snippet::new(
                        path.display().to_string(),
                        "ldif",
                        &text,
                        &ldif::secret_values(&text),
                    ),
                    span,
                })
            };
            let text = ldif::text_of(&bytes).map_err(located)?;
            let entries =
                parse_ldif_parallel(text, folder.filter(|_| file_urls)).map_err(located)?;
            drop(bytes);
            Snapshot::new(entries).map_err(|d| Error::Duplicate {
                which,
                path: path.clone(),
                dn: d.0.to_string(),
            })
        }
        DirectorySource::Ldap(settings) => {
            let builder = crate::directory::snapshot::Builder::new(None, |_| ());
            load_ldap(which, settings, builder).map(|o| o.snapshot)
        }
    }
}

/// Reads the destination as the plan file describes it. A live one is classified and indexed
/// as matching will (`pass`) while it is read; a file is left to matching, which does it on
/// every core once the file is in.
fn load_destination(
    source: &DirectorySource,
    file_urls: bool,
    pass: &matching::DestinationPass,
) -> Result<(Snapshot, Option<matching::DestinationFacts>), Error> {
    match source {
        DirectorySource::Ldap(settings) => {
            let organised = load_ldap("destination", settings, pass.builder())?;
            Ok(matching::DestinationFacts::from_organised(organised))
        }
        source => Ok((load_directory("destination", source, file_urls)?, None)),
    }
}

/// Reads a live LDAP directory, organised by `builder` as it arrives; skipped search
/// references are reported, never silent.
fn load_ldap<T: Copy + Send, F: FnMut(&crate::directory::Entry) -> T + Send>(
    which: &'static str,
    settings: &spec::LdapSettings,
    builder: crate::directory::snapshot::Builder<T, F>,
) -> Result<crate::directory::snapshot::Organised<T>, Error> {
    use crate::directory::ldap::{self, ReadSnapshotError};
    warn_insecure(which, settings);
    match ldap::read_organised(settings, builder) {
        Ok((organised, stats)) => {
            if stats.entries == 0 {
                // A search the bind user may not see into answers "success, nothing": the plan
                // would then count every person as new, or every DN in the plan file as missing.
                eprintln!(
                    "warning: {which} directory `{}` returned no entries under `{}` with filter `{}`; check the base and the filter, and that `{}` may read them",
                    settings.url,
                    settings.base,
                    settings.filter,
                    crate::directory::ldap::who(settings)
                );
            }
            if stats.references_skipped > 0 {
                eprintln!(
                    "note: {which} directory `{}`: {} search reference(s) to other servers or partitions skipped",
                    settings.url, stats.references_skipped
                );
            }
            Ok(organised)
        }
        Err(ReadSnapshotError::Ldap(e)) => Err(Error::Ldap { which, error: e }),
        Err(ReadSnapshotError::Duplicate(dn)) => Err(Error::Duplicate {
            which,
            path: settings.url.clone().into(),
            dn: dn.to_string(),
        }),
    }
}

/// `insecure: true` is allowed, and said out loud every time; so is a password sent over a
/// connection without TLS.
fn warn_insecure(which: &str, settings: &spec::LdapSettings) {
    for w in ldap_warnings(which, settings) {
        eprintln!("warning: {w}");
    }
}

/// What a directory's connection gives away: certificates not checked, or the bind password
/// sent in the clear (`ldap://` without StartTLS; `ldapi://` never leaves the machine).
pub fn ldap_warnings(which: &str, settings: &spec::LdapSettings) -> Vec<String> {
    let mut out = Vec::new();
    let url = &settings.url;
    if settings.insecure {
        out.push(format!(
            "{which} directory `{url}`: TLS certificates are NOT verified (insecure: true); the connection can be intercepted"
        ));
    }
    let plain = url
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("ldap://"));
    if plain && !settings.starttls && settings.bind_dn.is_some() && settings.password.is_some() {
        out.push(format!(
            "{which} directory `{url}`: the bind password is sent without TLS (ldap:// without `starttls: true`); anyone on the network path can read it"
        ));
    }
    out
}

/// Says out loud, once per run, what the item stores' connections give away (see
/// [`item_warnings`]).
fn warn_items(spec: &Spec) {
    for w in item_warnings(spec) {
        eprintln!("warning: {w}");
    }
}

/// What the connections to item stores give away: certificates not checked (`insecure: true`),
/// or a password sent without TLS (`imap://` with `tls: none`, `http://` with a login).
pub fn item_warnings(spec: &Spec) -> Vec<String> {
    let mut out = Vec::new();
    let insecure = |what: &str, url: &str| {
        format!(
            "{what} `{url}`: TLS certificates are NOT verified (insecure: true); the connection can be intercepted"
        )
    };
    if let Some(mail) = &spec.items.mail {
        for (side, store) in [("source", &mail.source), ("destination", &mail.destination)] {
            let spec::MailStore::Imap(imap) = store else {
                continue;
            };
            let url = format!("{}:{}", imap.host, imap.port);
            let what = format!("{side} IMAP server");
            if imap.insecure {
                out.push(insecure(&what, &url));
            }
            if imap.security == spec::ImapSecurity::None {
                out.push(format!(
                    "{what} `{url}`: the password is sent without TLS (imap:// with `tls: none`); anyone on the network path can read it"
                ));
            }
        }
    }
    let calendars = spec
        .items
        .calendars
        .as_ref()
        .and_then(|c| match &c.destination {
            spec::CalendarDestination::CalDav(d) => Some(("CalDAV server", d)),
            spec::CalendarDestination::IcsFolder(_) => None,
        });
    let contacts = spec
        .items
        .contacts
        .as_ref()
        .and_then(|c| match &c.destination {
            spec::ContactDestination::CardDav(d) => Some(("CardDAV server", d)),
            spec::ContactDestination::VcardFolder(_) => None,
        });
    for (what, dav) in calendars.into_iter().chain(contacts) {
        // The literal start of the URL template is enough: the scheme and host come first.
        let url: String = dav
            .url
            .parts
            .iter()
            .map(|p| match p {
                spec::TemplatePart::Literal(text) => text.as_str(),
                _ => "{…}",
            })
            .collect();
        if dav.insecure {
            out.push(insecure(what, &url));
        }
        let plain = url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
        if plain && dav.password.is_some() {
            out.push(format!(
                "{what} `{url}`: the password is sent without TLS (http://); anyone on the network path can read it"
            ));
        }
    }
    out
}

/// Parses a large LDIF file on every core: the text is cut at blank lines (record boundaries)
/// into one piece per core, each piece is parsed alone, and error line numbers are shifted back
/// to the whole file's. Small files are parsed in one piece.
fn parse_ldif_parallel(text: &str, base_dir: Option<&Path>) -> Result<Vec<Entry>, ldif::LdifError> {
    const MIN_PIECE: usize = 4 << 20;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let pieces = (text.len() / MIN_PIECE).clamp(1, cores);
    if pieces == 1 {
        return ldif::parse_entries(text, base_dir);
    }
    let mut bounds = vec![0];
    for i in 1..pieces {
        let target = text.len() * i / pieces;
        let last = *bounds.last().unwrap_or(&0);
        // A record boundary is a blank line; the next piece starts right after it.
        match text[target.max(last)..].find("\n\n") {
            Some(at) => bounds.push(target.max(last) + at + 2),
            None => break,
        }
    }
    bounds.push(text.len());
    bounds.dedup();
    let results: Vec<Result<Vec<Entry>, ldif::LdifError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .windows(2)
            .map(|w| {
                let piece = &text[w[0]..w[1]];
                let offset = text[..w[0]].bytes().filter(|&b| b == b'\n').count();
                scope.spawn(move || {
                    ldif::parse_entries(piece, base_dir).map_err(|mut e| {
                        e.line += offset;
                        e
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ldif::LdifError {
                        line: 0,
                        column: None,
                        message: "the LDIF reader failed".into(),
                    })
                })
            })
            .collect()
    });
    let mut entries = Vec::new();
    for r in results {
        entries.extend(r?);
    }
    Ok(entries)
}

/// The byte span of 1-based line `line` (without its line break).
fn line_span(text: &str, line: usize) -> SourceSpan {
    let mut start = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let len = l.trim_end_matches(['\n', '\r']).len();
            return SourceSpan::new(start.into(), len);
        }
        start += l.len();
    }
    SourceSpan::new(text.len().into(), 0)
}

/// Loads the plan file and both directories, and checks the plan file against them. Every
/// secret the plan file names is read first: a missing one stops everything before any
/// connection is made.
pub fn load_inputs(path: &Path) -> Result<Inputs, Error> {
    load_inputs_for(load_checked_spec(path)?)
}

/// Reads and validates the plan file, then reads every secret it names (`spec::check_secrets`):
/// what a command needs before it connects to anything or writes any state.
pub fn load_checked_spec(path: &Path) -> Result<Spec, Error> {
    let spec = load_spec(path)?;
    spec::check_secrets(&spec)?;
    Ok(spec)
}

/// [`load_inputs`] for a plan file already read and checked ([`load_checked_spec`]).
pub fn load_inputs_for(spec: Spec) -> Result<Inputs, Error> {
    // The two directories are independent: read them side by side. The source is usually the
    // smaller and is in first; choosing its persons then uses a core the destination's read
    // leaves idle (a live read waits on the server) instead of adding to matching.
    let pass = matching::DestinationPass::for_spec(&spec);
    let (source, destination) = std::thread::scope(|scope| {
        let source = scope.spawn(|| {
            load_directory("source", &spec.source.directory, spec.source.ldif_file_urls).map(
                |source| {
                    let rules = matching::SourceRules::for_spec(&spec);
                    let persons = matching::select_persons(&spec, &source, &rules);
                    (source, persons)
                },
            )
        });
        let destination = load_destination(
            &spec.destination.directory,
            spec.destination.ldif_file_urls,
            &pass,
        );
        let source = source
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (source, destination)
    });
    let ((source, persons), (destination, facts)) = (source?, destination?);
    spec::check_against(&spec, &source, &destination)?;
    let inputs = Inputs::new(spec, source, destination);
    if let Ok(mut prepared) = inputs.prepared.lock() {
        *prepared = Some(matching::Prepared {
            persons: Some(persons),
            destination: facts,
        });
    }
    Ok(inputs)
}

/// What earlier applies recorded in a state database, as planning input. A state holding a
/// DN or backup that does not parse is damaged, and is reported as such.
pub fn read_history(db: &crate::state::StateDb) -> Result<History, Error> {
    let stored = db.history()?;
    let corrupt = |reason: String| {
        Error::State(crate::state::StateError::Corrupt {
            path: db.path().to_path_buf(),
            reason,
        })
    };
    let dn = |text: &str| {
        crate::directory::Dn::parse(text)
            .map_err(|e| corrupt(format!("it records `{text}`, which is not a DN: {e}")))
    };
    let mut history = History::default();
    for (source, destination) in &stored.links {
        history.links.insert(dn(source)?, dn(destination)?);
    }
    for p in &stored.pending {
        let entry = ldif::parse_entries(&p.ldif, None)
            .map_err(|e| corrupt(format!("the backup of `{}` does not parse: {e}", p.contact)))?
            .into_iter()
            .next()
            .ok_or_else(|| corrupt(format!("the backup of `{}` holds no entry", p.contact)))?;
        history
            .pending
            .entry(dn(&p.source)?)
            .or_default()
            .push(entry);
    }
    for entries in history.pending.values_mut() {
        entries.sort_by(|a, b| a.dn.cmp(&b.dn));
    }
    history.restored = restored_contacts(db)?;
    Ok(history)
}

/// Contacts an apply deleted and a later restore put back (and no run deleted again since),
/// with the start of the run that restored them.
fn restored_contacts(
    db: &crate::state::StateDb,
) -> Result<std::collections::BTreeMap<crate::directory::Dn, String>, Error> {
    use std::collections::{BTreeMap, BTreeSet};
    let delete = crate::plan::ActionKind::DeleteContact.as_str();
    let restore = crate::plan::ActionKind::RestoreEntry.as_str();
    let mut deleted: BTreeSet<crate::directory::Dn> = BTreeSet::new();
    let mut restored = BTreeMap::new();
    let mut runs = db.runs()?;
    runs.reverse();
    for run in runs {
        for a in db.run_actions(run.id)? {
            if a.status.as_str() != "applied" || (a.kind != delete && a.kind != restore) {
                continue;
            }
            let Ok(dn) = crate::directory::Dn::parse(&a.target) else {
                continue;
            };
            if a.kind == delete {
                restored.remove(&dn);
                deleted.insert(dn);
            } else if deleted.contains(&dn) {
                restored.insert(dn, run.started_at.clone());
            }
        }
    }
    Ok(restored)
}

/// The history in the state at `location`, or none when nothing was ever applied there.
pub fn load_history(location: &Location) -> Result<History, Error> {
    match crate::state::StateDb::open_existing_at(location)? {
        Some(db) => read_history(&db),
        None => Ok(History::default()),
    }
}

/// Takes the item inventories the plan file asks for (source, ledger, destination), so the plan
/// can say exactly what each import copies. Reads only.
pub fn gather_items(inputs: &mut Inputs, state: &Location) -> Result<(), Error> {
    let endpoints = crate::items::endpoints_for(&inputs.spec, &inputs.source);
    if endpoints.is_empty() {
        return Ok(());
    }
    warn_items(&inputs.spec);
    inputs.inventories = crate::items::inventory::gather(&inputs.spec, &endpoints, Some(state))?;
    Ok(())
}

/// Narrows the plan to the persons `targets` names (`--target`, as Terraform's `-target`):
/// only they are planned, with what their actions need. Empty `targets` keep the whole wave.
pub fn target(spec: &mut Spec, targets: &[String]) -> Result<(), Error> {
    let mut dns = Vec::with_capacity(targets.len());
    for t in targets {
        let dn = crate::directory::Dn::parse(t).map_err(|e| Error::TargetNotADn {
            target: t.clone(),
            reason: e.to_string(),
        })?;
        dns.push(dn);
    }
    dns.sort();
    dns.dedup();
    spec.source.targets = dns;
    Ok(())
}

/// Writes a file whole or not at all (`atomic_file`), with errors naming the file.
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), Error> {
    use std::io::Write;
    write_atomic_with(path, |f| f.write_all(contents.as_bytes()))
}

/// [`write_atomic`], with the contents written by `write` as they are made.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), Error> {
    crate::atomic_file::write_atomic_with(path, write).map_err(|e| Error::Write {
        path: path.to_path_buf(),
        source: e,
    })
}

/// The plan file a saved plan at `saved` recorded: relative to the saved plan's folder. (Saved
/// plans written before that recorded the path as it was typed, relative to the folder `plan`
/// ran in; such a path is still found when it is there and the other is not.)
fn recorded_plan_file(saved: &Path, recorded: &str) -> PathBuf {
    let as_written = Path::new(recorded);
    if as_written.is_absolute() {
        return as_written.to_path_buf();
    }
    let beside = saved
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(as_written);
    if !beside.exists() && as_written.exists() {
        return as_written.to_path_buf();
    }
    beside
}

/// Reads a saved plan.
pub fn load_saved(path: &Path) -> Result<SavedPlan, Error> {
    load_saved_with_fingerprint(path).map(|(saved, _)| saved)
}

/// `load_saved`, with the fingerprint of the file's text: the runs of a saved plan are recorded
/// in the state under it (see [`prepare_saved`]). The plan file it names is resolved against
/// the saved plan's folder.
pub fn load_saved_with_fingerprint(path: &Path) -> Result<(SavedPlan, String), Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
        what: "saved plan",
        path: path.to_path_buf(),
        source: e,
    })?;
    // Hashing a large file takes a while too: it runs beside the parse.
    let (saved, fingerprint) = std::thread::scope(|scope| {
        let hash = scope.spawn(|| crate::plan::saved::text_fingerprint(&text));
        let saved = SavedPlan::from_json(&path.display().to_string(), &text);
        (
            saved,
            hash.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
        )
    });
    let mut saved = saved?;
    saved.plan_file = recorded_plan_file(path, &saved.plan_file)
        .display()
        .to_string();
    ActionGraph::build(&saved.plan)?;
    Ok((saved, fingerprint))
}

/// True when `path` looks like a saved plan rather than a YAML plan file.
pub fn is_saved_plan(path: &Path) -> bool {
    use std::io::Read;
    // Only the start is needed: a saved plan is JSON, a plan file YAML. Bounded, as every read.
    const LOOK: u64 = 64 << 10;
    let starts_with_brace = || {
        let mut head = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(LOOK).read_to_end(&mut head))
            .is_ok()
            && head.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{')
    };
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || starts_with_brace()
}

/// Locks the destination for one writer, whichever state folder the apply uses: an LDIF file
/// through a lock file beside it (`.NAME.mailplan-lock`), held until the returned guard is
/// dropped. Taken before the destination is read for the apply, so that what is planned and
/// written is the file as no other apply can change it meanwhile. A directory server guards
/// itself: each write carries its preconditions, so nothing is locked there.
pub fn lock_destination(spec: &Spec) -> Result<Option<crate::lockfile::Held>, Error> {
    let DirectorySource::Ldif(path) = &spec.destination.directory else {
        return Ok(None);
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "destination".into());
    let lock = path.with_file_name(format!(".{name}.mailplan-lock"));
    crate::lockfile::try_lock(
        path,
        &lock,
        &crate::lockfile::holder_description(&spec.path),
    )
    .map(Some)
    .map_err(Error::DestinationLocked)
}

/// The state folder of a plan file: `--state-dir` when given, else `.mailplan` beside the plan.
pub fn state_dir(plan_file: &Path, explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(d) => d.to_path_buf(),
        None => plan_file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join(".mailplan"),
    }
}

/// Where the state of a plan file is kept: the PostgreSQL database its `state:` section names
/// (the password read from its secret now), else the SQLite folder [`state_dir`] gives.
/// `--state-dir` with a PostgreSQL state is refused rather than one of the two ignored.
///
/// The PostgreSQL apply lock is taken per plan file and destination (see
/// [`lock_scope`]): two plans of one database, or one plan aimed at two destinations, do not
/// wait for each other; two applies of one plan into one destination, from any machines, do.
pub fn state_location(spec: &Spec, explicit: Option<&Path>) -> Result<Location, Error> {
    let Some(pg) = &spec.state else {
        return Ok(Location::Dir(state_dir(&spec.path, explicit)));
    };
    if explicit.is_some() {
        return Err(Error::StateDirWithPostgres);
    }
    let password = pg
        .password
        .as_ref()
        .map(|s| s.resolve())
        .transpose()
        .map_err(Error::StateSecret)?;
    let target = crate::state::postgres::Target::new(pg, password, lock_scope(spec))?;
    Ok(Location::Postgres(std::sync::Arc::new(target)))
}

/// [`state_location`] for a command that has only the plan file's path: reads the plan file
/// (checking it, without reading the secrets of its directories and stores).
pub fn state_location_of(plan_file: &Path, explicit: Option<&Path>) -> Result<Location, Error> {
    state_location(&load_spec(plan_file)?, explicit)
}

/// What the PostgreSQL apply lock is taken for: the plan file (by its name, the same on every
/// machine that works on the wave) and its destination (an LDAP server's URL and base, or an
/// LDIF file's name).
pub fn lock_scope(spec: &Spec) -> String {
    let plan = spec
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let destination = match &spec.destination.directory {
        DirectorySource::Ldap(settings) => {
            format!("{} {}", settings.url.to_ascii_lowercase(), settings.base)
        }
        DirectorySource::Ldif(path) => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    format!("plan {plan} -> destination {destination}")
}

/// Writes the plan file's connection caps (`items.connections`) to a shared state, each only
/// when the database has none for its endpoint or the plan file's value changed since a plan
/// file last wrote it: a plan edit is picked up, and a cap set with `state set-cap` is not
/// undone by the next worker that starts with the old file. Says on standard error what it
/// wrote. Nothing to do on a SQLite state, where the plan file's caps hold within the process.
pub(crate) fn write_plan_caps(spec: &Spec, db: &crate::state::StateDb) -> Result<(), Error> {
    let Some(caps) = db.caps() else {
        return Ok(());
    };
    let by = format!(
        "plan file {} on {}",
        spec.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        crate::state::host::hostname()
    );
    for (endpoint, n) in &spec.items.connections {
        if caps.write_plan_cap(endpoint, *n, &by)? {
            eprintln!("{endpoint}: at most {n} connections (from the plan file)");
        }
    }
    Ok(())
}
