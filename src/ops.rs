//! The operations behind the commands: load inputs, make a plan, save and load plans.
//!
//! This is where I/O happens (reading the plan file and directories), so that `matching` and
//! `plan` stay pure and the CLI stays thin. Errors are typed and carry what miette needs to show
//! the offending file, line and column.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use miette::{Diagnostic, SourceSpan};

use crate::directory::{Entry, Snapshot, ldif};
use crate::matching;
use crate::plan::graph::{ActionGraph, GraphError};
use crate::plan::saved::{SavedPlan, SavedPlanError};
use crate::plan::{self, Plan, PlanError};
use crate::spec::{self, DirectorySource, PlanFileError, Spec};

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    #[error(transparent)]
    #[diagnostic(transparent)]
    PlanFile(#[from] Box<PlanFileError>),
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

/// Everything a plan is computed from.
pub struct Inputs {
    pub spec: Spec,
    pub source: Snapshot,
    pub destination: Snapshot,
    /// What earlier applies left unfinished (empty until read from a state database).
    pub history: plan::History,
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
            history: plan::History::default(),
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
pub fn read_history(db: &crate::state::StateDb) -> Result<plan::History, Error> {
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
    let mut history = plan::History::default();
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
    Ok(history)
}

/// The history in the state folder `dir`, or none when nothing was ever applied there.
pub fn load_history(dir: &Path) -> Result<plan::History, Error> {
    match crate::state::StateDb::open_existing(dir)? {
        Some(db) => read_history(&db),
        None => Ok(plan::History::default()),
    }
}

/// Takes the item inventories the plan file asks for (source, ledger, destination), so the plan
/// can say exactly what each import copies. Reads only.
pub fn gather_items(inputs: &mut Inputs, state_dir: &Path) -> Result<(), Error> {
    let endpoints = crate::items::endpoints_for(&inputs.spec, &inputs.source);
    if endpoints.is_empty() {
        return Ok(());
    }
    warn_items(&inputs.spec);
    inputs.inventories =
        crate::items::inventory::gather(&inputs.spec, &endpoints, Some(state_dir))?;
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

/// Matches and plans: the pure core, with the graph checked.
pub fn make_plan(inputs: &Inputs) -> Result<Plan, Error> {
    let matches = matching::match_prepared(
        &inputs.spec,
        &inputs.source,
        &inputs.destination,
        &inputs.history.links,
        inputs.take_prepared(),
    );
    let plan = plan::plan_with_items(
        &inputs.spec,
        &inputs.source,
        &inputs.destination,
        &matches,
        &inputs.history,
        &inputs.inventories,
    )?;
    // Matching's indexes hold a key for every address, account and name of the destination
    // (about a million for 300,000 objects): freeing them here held up the graph check and
    // the text of the plan by 0.1 s.
    crate::parallel::drop_elsewhere(matches);
    ActionGraph::build(&plan)?;
    targeted(&inputs.spec, plan)
}

/// A plan made for `--target`s: each must be a person of the wave, and the plan says first that
/// it is not the whole wave.
fn targeted(spec: &Spec, mut plan: Plan) -> Result<Plan, Error> {
    let targets = &spec.source.targets;
    if targets.is_empty() {
        return Ok(plan);
    }
    let planned: BTreeSet<&crate::directory::Dn> =
        plan.subjects.iter().map(|s| &s.source).collect();
    if let Some(missing) = targets.iter().find(|t| !planned.contains(t)) {
        return Err(Error::TargetNotInWave(missing.to_string()));
    }
    let names: Vec<String> = targets.iter().map(ToString::to_string).collect();
    plan.messages.insert(
        0,
        plan::Message {
            level: plan::Level::Warning,
            text: format!(
                "targeting is in effect: only the {} given with --target {} planned ({}), with what their actions need; the rest of the wave and its distribution lists are left out, so this is not the whole plan",
                if names.len() == 1 { "person".to_string() } else { format!("{} persons", names.len()) },
                if names.len() == 1 { "is" } else { "are" },
                names.join("; ")
            ),
        },
    );
    plan.summary.warnings += 1;
    Ok(plan)
}

/// The async runtime an apply of `plan` runs on. Directory changes wait on the server, which
/// syncs its disk for every write: one thread drives them all, without the wake-ups from
/// thread to thread a pool costs (a seventh less CPU in the LDAP benchmark, and the server
/// keeps the other cores). Item imports parse and copy message bodies, and get a thread per core.
pub fn apply_runtime(plan: &Plan) -> std::io::Result<tokio::runtime::Runtime> {
    let imports = plan
        .actions
        .iter()
        .any(|a| a.kind.effect() == plan::Effect::Import);
    let mut builder = if imports {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build()
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

/// Saves a plan for review and a later `apply FILE`.
/// The plan file's path is recorded relative to the saved plan's folder, so that the saved plan
/// finds it from wherever it is applied.
pub fn save_plan(out: &Path, inputs: &Inputs, plan: &Plan, plan_path: &Path) -> Result<(), Error> {
    let recorded = relative_from(out, plan_path);
    write_atomic_with(out, |f| {
        crate::plan::saved::write_saved(f, plan, &recorded, &inputs.spec.text, &inputs.destination)
    })
}

/// `target` as seen from the folder of the file `from` (`../plans/wave1.yaml`), with `/`
/// between levels; `target` as given when the two share no folder to start from (another
/// drive) or either cannot be resolved.
fn relative_from(from: &Path, target: &Path) -> String {
    use std::path::Component;
    let folder = |p: &Path| {
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
        std::fs::canonicalize(parent.unwrap_or(Path::new(".")))
    };
    let (Ok(base), Ok(dir), Some(name)) = (folder(from), folder(target), target.file_name()) else {
        return target.display().to_string();
    };
    let base: Vec<Component> = base.components().collect();
    let dir: Vec<Component> = dir.components().collect();
    if base.first() != dir.first() {
        return target.display().to_string();
    }
    let common = base.iter().zip(&dir).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); base.len() - common];
    parts.extend(
        dir[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.push(name.to_string_lossy().into_owned());
    parts.join("/")
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
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || std::fs::read(path)
            .ok()
            .is_some_and(|b| b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{'))
}

/// A plan ready to apply: its inputs, the plan, and what a saved plan recorded of the destination
/// (nothing for a plan made just now).
pub struct Prepared {
    /// The YAML plan file it comes from (a saved plan's recorded one).
    pub plan_file: PathBuf,
    pub inputs: Inputs,
    pub plan: Plan,
    pub recorded: crate::apply::Recorded,
    /// What runs of it are recorded under in the state: a saved plan's own fingerprint (so a
    /// rerun of the same saved plan knows what its earlier runs did), else the plan file's.
    pub fingerprint: String,
}

/// Plans a YAML plan file now, for `apply PLAN.yaml`: the item inventories are taken first,
/// and what earlier applies recorded in `history` and left undone is finished.
pub fn prepare_plan_file(
    spec: Spec,
    history: plan::History,
    state_dir: &Path,
) -> Result<Prepared, Error> {
    let path = spec.path.clone();
    let mut inputs = load_inputs_for(spec)?;
    inputs.history = history;
    gather_items(&mut inputs, state_dir)?;
    let plan = make_plan(&inputs)?;
    let fingerprint = crate::plan::saved::text_fingerprint(&inputs.spec.text);
    Ok(Prepared {
        plan_file: path,
        inputs,
        plan,
        recorded: crate::apply::Recorded::none(),
        fingerprint,
    })
}

/// Loads a saved plan for `apply FILE`, with its plan file as `spec` (read and checked with
/// [`load_checked_spec`]): refused whole when the plan file changed since. The
/// fingerprints it recorded go to the executor, which fails as stale the actions touching an
/// entry that changed.
///
/// When earlier runs of this same saved plan applied part of it (a run killed or failed), the
/// second value holds the actions they applied: the executor counts those as done, and the
/// entries they wrote are not held against the rest.
///
/// `fingerprint` is the saved plan file's (from [`load_saved_with_fingerprint`]): the file the
/// user reviewed is what a rerun must match. A file as `plan --out` wrote it hashes the same as
/// its plan serialised again, without the cost of doing so for a large plan.
pub fn prepare_saved(
    file: &Path,
    saved: SavedPlan,
    fingerprint: String,
    spec: Spec,
    db: &crate::state::StateDb,
) -> Result<(Prepared, Option<BTreeSet<String>>), Error> {
    let plan_path = PathBuf::from(&saved.plan_file);
    let now = crate::plan::saved::text_fingerprint(&spec.text);
    if now != saved.plan_fingerprint {
        return Err(Error::PlanFileChanged {
            saved: file.to_path_buf(),
            plan_file: plan_path,
        });
    }
    let inputs = load_for_saved(spec)?;
    let resume = db.has_runs_of(&fingerprint)?;
    let done = if resume {
        db.applied_actions(&fingerprint)?
    } else {
        BTreeSet::new()
    };
    let ours: BTreeSet<crate::directory::Dn> = if resume {
        saved
            .plan
            .actions
            .iter()
            .flat_map(crate::apply::executor::touched)
            .collect()
    } else {
        BTreeSet::new()
    };
    // A DN that does not parse names nothing an action touches, so it cannot guard one.
    let fingerprints = saved
        .entries
        .into_iter()
        .filter_map(|(dn, recorded)| Some((crate::directory::Dn::parse(&dn).ok()?, recorded)))
        .collect();
    Ok((
        Prepared {
            plan_file: plan_path,
            inputs,
            plan: saved.plan,
            recorded: crate::apply::Recorded::new(fingerprints, ours),
            fingerprint,
        },
        resume.then_some(done),
    ))
}

/// What applying a saved plan needs of the directories, and no more: the destination only when
/// it is an LDIF file (the writer changes it in memory and rewrites the file), the source only
/// when items are copied (their mailboxes are named from the persons). Every entry an action
/// touches is read live right before its write, so a live destination is not read here at all.
fn load_for_saved(spec: Spec) -> Result<Inputs, Error> {
    let source = if spec.items.any() {
        warn_items(&spec);
        load_directory("source", &spec.source.directory, spec.source.ldif_file_urls)?
    } else {
        Snapshot::default()
    };
    let destination = match &spec.destination.directory {
        DirectorySource::Ldif(_) => load_directory(
            "destination",
            &spec.destination.directory,
            spec.destination.ldif_file_urls,
        )?,
        DirectorySource::Ldap(settings) => {
            warn_insecure("destination", settings);
            Snapshot::default()
        }
    };
    Ok(Inputs::new(spec, source, destination))
}

/// Source persons whose pending merges (see `plan::History`) this plan shows to be complete:
/// they were planned, and no merge was needed.
pub fn settled_merges(prepared: &Prepared) -> Vec<String> {
    let history = &prepared.inputs.history;
    prepared
        .plan
        .subjects
        .iter()
        .filter(|s| history.pending.contains_key(&s.source))
        .filter(|s| matches!(s.status, plan::Status::Planned | plan::Status::Unchanged))
        .filter(|s| {
            !prepared
                .plan
                .actions
                .iter()
                .any(|a| a.kind == plan::ActionKind::MergeAttributes && a.subject == s.source)
        })
        .map(|s| s.source.to_string())
        .collect()
}

/// Records the merges [`settled_merges`] finds, for an apply that has nothing else to do.
pub fn settle_merges(db: &crate::state::StateDb, prepared: &Prepared) -> Result<(), Error> {
    let sources = settled_merges(prepared);
    if sources.is_empty() {
        return Ok(());
    }
    let run = db.begin_run(
        &prepared.plan_file.display().to_string(),
        &prepared.fingerprint,
    )?;
    for s in &sources {
        db.merged(run, s)?;
    }
    db.finish_run(run, crate::state::RunOutcome::Succeeded)?;
    Ok(())
}

/// Applies a prepared plan to its destination (no item stores: a plan without imports).
pub async fn apply(
    prepared: Prepared,
    journal: std::sync::Arc<dyn crate::apply::Journal>,
    reporter: std::sync::Arc<dyn crate::apply::Reporter>,
    options: crate::apply::Options,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<crate::apply::Report, Error> {
    apply_with_items(prepared, journal, reporter, options, cancel, None)
        .await
        .map(|a| a.report)
}

/// `apply`, with the item stores: `items` is the state folder and the run the ledger records
/// copied items under. The outcome names every person the plan leaves out and every item
/// skipped as bad, so the caller can tell whether everything arrived.
pub async fn apply_with_items(
    prepared: Prepared,
    journal: std::sync::Arc<dyn crate::apply::Journal>,
    reporter: std::sync::Arc<dyn crate::apply::Reporter>,
    options: crate::apply::Options,
    cancel: tokio::sync::watch::Receiver<bool>,
    items: Option<(PathBuf, crate::state::RunId)>,
) -> Result<crate::apply::Applied, Error> {
    use std::sync::Arc;
    let importer = items.map(|(dir, run)| {
        let endpoints = crate::items::endpoints_for(&prepared.inputs.spec, &prepared.inputs.source);
        Arc::new(crate::items::import::ItemImporter::new(
            prepared.inputs.spec.items.clone(),
            endpoints,
            dir,
            run,
        ))
    });
    let shared = importer
        .clone()
        .map(|i| i as Arc<dyn crate::apply::Importer>);
    let Prepared {
        inputs,
        plan,
        recorded,
        ..
    } = prepared;
    let plan = Arc::new(plan);
    let rules = Arc::new(matching::DestinationRules::for_spec(&inputs.spec));
    let report = match &inputs.spec.destination.directory {
        DirectorySource::Ldif(path) => {
            let writer = Arc::new(crate::apply::LdifDirectory::new(path, &inputs.destination));
            drop(inputs);
            crate::apply::execute_with_importer(
                plan.clone(),
                writer,
                rules,
                journal,
                reporter,
                Arc::new(recorded),
                shared,
                options,
                cancel,
            )
            .await?
        }
        DirectorySource::Ldap(settings) => {
            // The insecure warning was printed when the destination was read for this plan.
            let writer = crate::apply::LdapDirectory::connect(settings, options.parallelism)
                .await
                .map_err(|e| Error::Ldap {
                    which: "destination",
                    error: e,
                })?;
            drop(inputs);
            crate::apply::execute_with_importer(
                plan.clone(),
                Arc::new(writer),
                rules,
                journal,
                reporter,
                Arc::new(recorded),
                shared,
                options,
                cancel,
            )
            .await?
        }
    };
    let mut skipped = importer
        .as_ref()
        .map(|i| i.take_skipped())
        .unwrap_or_default();
    // Bad items the plan found for persons whose import of that kind did not run now: nothing
    // else of that kind to copy (or the import failed). They are left out all the same.
    let ran: BTreeSet<(&crate::directory::Dn, plan::ActionKind)> = report
        .results
        .iter()
        .zip(plan.actions.iter())
        .filter(|((_, r), _)| *r == crate::apply::ActionResult::Applied)
        .map(|(_, a)| (&a.subject, a.kind))
        .collect();
    for subject in plan.subjects.iter().filter(|s| !s.bad_items.is_empty()) {
        for kind in [
            crate::items::ItemKind::Mail,
            crate::items::ItemKind::Calendar,
            crate::items::ItemKind::Contacts,
        ] {
            if ran.contains(&(&subject.source, import_kind(kind))) {
                continue;
            }
            let bad: Vec<crate::items::BadItem> = subject
                .bad_items
                .iter()
                .filter(|b| b.kind == kind)
                .map(|b| crate::items::BadItem {
                    location: b.location.clone(),
                    message: b.message.clone(),
                })
                .collect();
            if bad.is_empty() {
                continue;
            }
            if let Some(i) = &importer {
                i.record_planned_bad(&subject.source, kind, &bad);
            }
            skipped.extend(bad.into_iter().map(|item| crate::apply::SkippedItem {
                source: subject.source.clone(),
                kind,
                item,
            }));
        }
    }
    // By person and kind; each import's own items stay in the order it found them.
    skipped.sort_by(|a, b| (&a.source, a.kind).cmp(&(&b.source, b.kind)));
    Ok(crate::apply::Applied {
        left_out: plan.left_out(),
        report,
        skipped,
    })
}

/// The import action of a kind of item.
fn import_kind(kind: crate::items::ItemKind) -> plan::ActionKind {
    match kind {
        crate::items::ItemKind::Mail => plan::ActionKind::ImportMail,
        crate::items::ItemKind::Calendar => plan::ActionKind::ImportCalendar,
        crate::items::ItemKind::Contacts => plan::ActionKind::ImportContacts,
    }
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

/// The plan that restores `dn` from its latest backup, with the inputs to apply it.
pub fn prepare_restore(
    spec: Spec,
    state: &crate::state::StateDb,
    dn: &str,
) -> Result<Prepared, Error> {
    let plan_file = spec.path.clone();
    let inputs = load_inputs_for(spec)?;
    let backup = state
        .latest_backup(dn)?
        .ok_or_else(|| Error::NoBackup(dn.to_string()))?;
    let entry = ldif::parse_entries(&backup.ldif, None)
        .map_err(|e| Error::BadBackup {
            dn: dn.into(),
            message: e.to_string(),
        })?
        .into_iter()
        .next()
        .ok_or_else(|| Error::BadBackup {
            dn: dn.into(),
            message: "it holds no entry".into(),
        })?;
    let plan = crate::plan::restore::restore(&entry, inputs.destination.get(&entry.dn));
    let fingerprint = crate::plan::saved::text_fingerprint(&inputs.spec.text);
    Ok(Prepared {
        plan_file,
        inputs,
        plan,
        recorded: crate::apply::Recorded::none(),
        fingerprint,
    })
}
