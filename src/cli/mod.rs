//! The command line: clap types and one thin function per command.
//!
//! Each function parses nothing itself and decides nothing: it calls `ops` and the renderers and
//! maps the outcome to an exit code (0 success or no changes, 1 error, 2 changes present with
//! `--detailed-exitcode`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::generate::{GenerateOptions, generate_into};
use crate::ops::{self, Error};
use crate::plan::Plan;
use crate::render::{self, text::Style};

#[derive(Debug, Parser)]
#[command(
    name = "mailplan",
    version,
    about = "Plan and apply mailbox and directory migrations, Terraform-style",
    long_about = "mailplan reads a YAML migration plan, matches every source person (Lotus Domino, LDAP, \
Active Directory) to what already exists at the destination (Active Directory with Exchange attributes, \
or an LDAP mail directory), and prints the dependency graph of actions that would migrate them: create \
mailbox, convert NT account, convert mail-enabled user, move memberships, delete contact, merge \
attributes, distribution lists.\n\nA plan is deterministic: the same inputs give the same bytes, so saved \
plans can be reviewed in git and applied exactly as reviewed.",
    after_help = "Exit codes: 0 success (or no changes), 1 error, 2 changes present (with --detailed-exitcode)."
)]
pub struct Cli {
    /// When to use colour: auto colours only on a terminal (and honours NO_COLOR).
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    pub color: Color,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    /// Whether to colour a stream that is (or is not) a terminal.
    pub fn enabled(self, terminal: bool) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a plan file: syntax, keys, DNs, filters, templates. Reads no directory.
    Validate {
        /// The YAML plan file.
        plan: PathBuf,
    },
    /// Match source and destination and print what apply would do. Changes nothing anywhere.
    Plan(PlanArgs),
    /// Carry out a plan: a YAML plan file (planned now, shown, confirmed) or a reviewed saved
    /// plan (applied exactly as saved, refused if its plan file changed since).
    Apply(ApplyArgs),
    /// What apply did: runs, outcomes, backups; restore entries from backups.
    #[command(subcommand)]
    State(StateCommand),
    /// Print a saved plan (made with `plan --out`).
    Show {
        /// The saved plan.
        file: PathBuf,
        /// Print the plan as JSON (schemas/plan-output.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// Print the action graph of a plan file or saved plan.
    Graph {
        /// A YAML plan file or a saved plan.
        input: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// The audit of a wave, for review: per person scenario, match, status, contacts to
    /// delete and item volume; totals, problems, soft candidates, largest mailboxes.
    Report {
        /// A YAML plan file (planned now, read-only) or a saved plan.
        input: PathBuf,
        /// markdown for a pull request, csv (one row per person) for a spreadsheet, html for a
        /// self-contained page with charts.
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
        /// Write the report to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// After an apply: per person and folder, the messages (and events and contacts) at the
    /// source, at the destination and in the ledger, every difference explained. Exit 1 when
    /// anything the plan meant to copy is missing or bad, 0 when everything arrived.
    Verify {
        /// The YAML plan file that was applied.
        plan: PathBuf,
        /// Print the verification as JSON (schemas/verify-output.schema.json).
        #[arg(long)]
        json: bool,
        /// The state folder whose ledger to read; default `.mailplan` beside the plan file.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Write a synthetic Domino source, AD destination and plan file (for benchmarks and tests).
    Generate {
        /// Number of source persons.
        #[arg(long, default_value_t = 1000)]
        persons: usize,
        /// Total destination entries (filled up with unrelated objects); default 3 × persons.
        #[arg(long)]
        destination_objects: Option<usize>,
        /// Seed of the generator: the same seed gives the same files, byte for byte.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Folder to write source.ldif, destination.ldif and plan.yaml into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a JSON Schema: of plan files (`plan`), of `--json` output (`output`) or of `verify
    /// --json` output (`verify`).
    Schema {
        #[arg(value_enum)]
        which: SchemaKind,
    },
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The YAML plan file.
    pub plan: PathBuf,
    /// Also save the plan to FILE, for review and `apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print the plan as JSON (schemas/plan-output.schema.json) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit 2 when the plan has changes, 0 when it has none, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// The state folder of earlier applies, only read: what they left undone is finished, and
    /// its item ledger says what was copied already. Default `.mailplan` beside the plan file.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Plan only this source person (repeatable), with what its actions need, as Terraform's
    /// -target: for a retry or a pilot. Distribution lists and the rest of the wave are left
    /// out, and the plan says so first.
    #[arg(long = "target", value_name = "SOURCE_DN")]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A YAML plan file, or a saved plan made with `plan --out`.
    pub input: PathBuf,
    /// Apply a YAML plan file without asking for `yes` first.
    #[arg(long)]
    pub auto_approve: bool,
    /// How many actions may write at once (the next ones read and check their entries ahead).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub parallelism: u16,
    /// The state folder (run history, backups, lock); default `.mailplan` beside the plan file.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Apply only this source person (repeatable), with what its actions need (see `plan
    /// --target`). Only with a plan file: a saved plan is applied as it was reviewed.
    #[arg(long = "target", value_name = "SOURCE_DN")]
    pub targets: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List the runs of apply, newest first.
    List(StateArgs),
    /// Show one run's actions and their outcomes.
    Show {
        #[command(flatten)]
        state: StateArgs,
        /// The run number (from `state list`).
        run: i64,
    },
    /// List the backups taken before entries were changed or deleted.
    Backups {
        #[command(flatten)]
        state: StateArgs,
        /// Only the backups of this entry.
        #[arg(long)]
        dn: Option<String>,
    },
    /// Put an entry back as its latest backup holds it (a deleted contact, a modified user).
    Restore {
        #[command(flatten)]
        state: StateArgs,
        /// The entry's DN.
        dn: String,
        /// Restore without asking for `yes` first.
        #[arg(long)]
        auto_approve: bool,
    },
    /// The item ledger: per destination mailbox, the messages, events and contacts copied, and
    /// the bad items that were skipped (`--bad` lists them).
    Items {
        #[command(flatten)]
        state: StateArgs,
        /// List every bad item with its place and reason.
        #[arg(long)]
        bad: bool,
    },
    /// Remove the apply lock, whoever holds it (only when you are sure no apply runs).
    Unlock(StateArgs),
}

#[derive(Debug, Args)]
pub struct StateArgs {
    /// The YAML plan file whose state this is.
    pub plan: PathBuf,
    /// The state folder; default `.mailplan` beside the plan file.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Markdown,
    Csv,
    Html,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    Plan,
    Output,
    Verify,
}

pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    let style = Style {
        color: cli.color.enabled(std::io::stdout().is_terminal()),
    };
    match cli.command {
        Command::Validate { plan } => validate(plan),
        Command::Plan(args) => plan(args, style),
        Command::Apply(args) => apply(args, style),
        Command::State(cmd) => state(cmd, style),
        Command::Show { file, json } => show(file, json, style),
        Command::Graph { input, format } => graph(input, format),
        Command::Report { input, format, out } => report(input, format, out),
        Command::Verify {
            plan,
            json,
            state_dir,
        } => verify(plan, json, state_dir),
        Command::Generate {
            persons,
            destination_objects,
            seed,
            out,
        } => {
            let opts = GenerateOptions {
                persons,
                destination_objects: destination_objects.unwrap_or(persons * 3),
                seed,
            };
            let summary = generate_into(&out, &opts).map_err(|e| Error::Write {
                path: out.clone(),
                source: e,
            })?;
            eprintln!(
                "wrote {} source and {} destination entries, and plan.yaml, to {}",
                summary.source_entries,
                summary.destination_entries,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { which } => {
            let text = match which {
                SchemaKind::Plan => crate::spec::json_schema(),
                SchemaKind::Output => render::json::schema(),
                SchemaKind::Verify => render::verify::schema(),
            };
            print(&text)
        }
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "mailplan", &mut out);
            print(&String::from_utf8_lossy(&out))
        }
    }
}

/// Writes to stdout; a closed pipe (`mailplan plan … | head`) is not an error.
fn print(s: &str) -> Result<ExitCode, Error> {
    print_with(|out| out.write_all(s.as_bytes()))
}

/// Streams to a buffered stdout, with `print`'s treatment of a closed pipe.
fn print_with(f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<ExitCode, Error> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    match f(&mut out).and_then(|_| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(Error::Write {
            path: "<stdout>".into(),
            source: e,
        }),
    }
}

fn validate(path: PathBuf) -> Result<ExitCode, Error> {
    ops::load_spec(&path)?;
    eprintln!("{} is a valid plan file.", path.display());
    Ok(ExitCode::SUCCESS)
}

fn plan(args: PlanArgs, style: Style) -> Result<ExitCode, Error> {
    let mut spec = ops::load_checked_spec(&args.plan)?;
    ops::target(&mut spec, &args.targets)?;
    let mut inputs = ops::load_inputs_for(spec)?;
    let state_dir = ops::state_dir(&args.plan, args.state_dir.as_deref());
    inputs.history = ops::load_history(&state_dir)?;
    ops::gather_items(&mut inputs, &state_dir)?;
    let plan = ops::make_plan(&inputs)?;
    let changes = plan.has_changes();
    if let Some(out) = &args.out {
        ops::save_plan(out, &inputs, &plan, &args.plan)?;
    }
    output(&plan, args.json, style)?;
    if let Some(out) = &args.out {
        eprintln!(
            "Saved the plan to {}. Review it with `mailplan show {}`.",
            out.display(),
            out.display()
        );
    }
    let errors = plan.summary.not_migrated.error;
    if errors > 0 {
        // Everything that could be planned was printed; the plan is still not whole.
        eprintln!(
            "error: {errors} {} could not be planned, in whole or in part (see the errors above); applying this plan leaves {} out",
            if errors == 1 { "person" } else { "persons" },
            if errors == 1 { "that person" } else { "them" },
        );
    }
    // The process ends here: freeing hundreds of thousands of entries one by one would only
    // delay the exit by seconds on large directories.
    std::mem::forget(inputs);
    std::mem::forget(plan);
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else if args.detailed_exitcode && changes {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints a plan as text or JSON.
fn output(plan: &Plan, json: bool, style: Style) -> Result<ExitCode, Error> {
    if json {
        print_with(|out| render::json::write(plan, out))
    } else {
        print_text(plan, style)
    }
}

/// Prints a plan as text, streamed as it is rendered.
fn print_text(plan: &Plan, style: Style) -> Result<ExitCode, Error> {
    print_with(|out| render::text::write(plan, style, out))
}

fn show(file: PathBuf, json: bool, style: Style) -> Result<ExitCode, Error> {
    let saved = ops::load_saved(&file)?;
    output(&saved.plan, json, style)
}

/// A saved plan as it was saved, or a plan file planned now (reading only).
fn plan_of(input: &std::path::Path) -> Result<Plan, Error> {
    if ops::is_saved_plan(input) {
        return Ok(ops::load_saved(input)?.plan);
    }
    let mut inputs = ops::load_inputs(input)?;
    let state_dir = ops::state_dir(input, None);
    inputs.history = ops::load_history(&state_dir)?;
    ops::gather_items(&mut inputs, &state_dir)?;
    ops::make_plan(&inputs)
}

fn report(input: PathBuf, format: ReportFormat, out: Option<PathBuf>) -> Result<ExitCode, Error> {
    let plan = plan_of(&input)?;
    let text = render::report::render(
        &plan,
        match format {
            ReportFormat::Markdown => render::report::Format::Markdown,
            ReportFormat::Csv => render::report::Format::Csv,
            ReportFormat::Html => render::report::Format::Html,
        },
    );
    match out {
        Some(path) => {
            ops::write_atomic(&path, &text)?;
            eprintln!("Wrote the report to {}.", path.display());
            Ok(ExitCode::SUCCESS)
        }
        None => print(&text),
    }
}

fn verify(plan: PathBuf, json: bool, state_dir: Option<PathBuf>) -> Result<ExitCode, Error> {
    let state_dir = ops::state_dir(&plan, state_dir.as_deref());
    let v = crate::verify::gather::wave(&plan, &state_dir)?;
    print(&if json {
        render::verify::json(&v)
    } else {
        render::verify::text(&v)
    })?;
    Ok(if v.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn graph(input: PathBuf, format: GraphFormat) -> Result<ExitCode, Error> {
    let plan = plan_of(&input)?;
    print(&match format {
        GraphFormat::Dot => render::graph::dot(&plan),
        GraphFormat::Mermaid => render::graph::mermaid(&plan),
    })
}

fn apply(args: ApplyArgs, style: Style) -> Result<ExitCode, Error> {
    let saved = if ops::is_saved_plan(&args.input) {
        Some(ops::load_saved_with_fingerprint(&args.input)?)
    } else {
        None
    };
    let plan_file = match &saved {
        Some((s, _)) => PathBuf::from(&s.plan_file),
        None => args.input.clone(),
    };
    // The plan file and its secrets are checked before anything is written, the state included.
    let mut spec = ops::load_checked_spec(&plan_file)?;
    if saved.is_some() && !args.targets.is_empty() {
        return Err(Error::TargetOnSavedPlan);
    }
    ops::target(&mut spec, &args.targets)?;
    // The lock comes first: what an apply plans from (the state's record of earlier runs) must
    // not change under it.
    let state_dir = ops::state_dir(&plan_file, args.state_dir.as_deref());
    let db = crate::state::StateDb::open(&state_dir)?;
    let lock = db.lock()?;
    let _destination = ops::lock_destination(&spec)?;
    let (prepared, resume) = match saved {
        Some((saved, fingerprint)) => {
            let (prepared, resume) =
                ops::prepare_saved(&args.input, saved, fingerprint, spec, &db)?;
            crate::apply::guard::check_deletes(&prepared.plan, &prepared.inputs.spec)?;
            if !prepared.plan.has_changes() && !leaves_out_errors(&prepared.plan) {
                eprintln!("The saved plan has no changes.");
                return Ok(ExitCode::SUCCESS);
            }
            (prepared, resume)
        }
        None => {
            let history = ops::read_history(&db)?;
            let prepared = ops::prepare_plan_file(spec, history, &state_dir)?;
            print_text(&prepared.plan, style)?;
            crate::apply::guard::check_deletes(&prepared.plan, &prepared.inputs.spec)?;
            if !prepared.plan.has_changes() {
                if !leaves_out_errors(&prepared.plan) {
                    ops::settle_merges(&db, &prepared)?;
                    return Ok(ExitCode::SUCCESS);
                }
                // Nothing to change, but not everything is there: the run records what is
                // left out, and says so.
            } else if !args.auto_approve && !confirm()? {
                eprintln!("Apply cancelled.");
                return Ok(ExitCode::FAILURE);
            }
            (prepared, None)
        }
    };
    let code = execute(prepared, db, usize::from(args.parallelism), resume)?;
    lock.release()?;
    Ok(code)
}

/// Whether a plan leaves out a person because of an error, or an item as bad: then an apply
/// of it fails even when it has nothing to change.
fn leaves_out_errors(plan: &Plan) -> bool {
    plan.has_errors() || plan.summary.bad_items > 0
}

/// Runs a prepared plan under the state database's lock (held by the caller), recording the
/// run, and prints the summary. Exit 0 only when everything arrived: every action applied, no
/// person left out for an error, no item skipped.
fn execute(
    prepared: ops::Prepared,
    db: crate::state::StateDb,
    parallelism: usize,
    resume: Option<std::collections::BTreeSet<String>>,
) -> Result<ExitCode, Error> {
    use std::sync::Arc;
    let style = Style { color: false };
    let run = db.begin_run(
        &prepared.plan_file.display().to_string(),
        &prepared.fingerprint,
    )?;
    let settle = ops::settled_merges(&prepared);
    // The item importer keeps its ledger in the same state folder.
    let items_dir = db
        .path()
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let options = crate::apply::Options {
        parallelism,
        resume,
    };
    let journal = Arc::new(crate::state::journal::StateJournal::new(
        db,
        run,
        options.in_flight(),
    )?);
    let reporter: Arc<dyn crate::apply::Reporter> = if std::io::stderr().is_terminal() {
        Arc::new(crate::apply::reporter::Bar::new())
    } else {
        Arc::new(crate::apply::reporter::Lines)
    };
    let runtime = ops::apply_runtime(&prepared.plan).map_err(|e| Error::Write {
        path: "<runtime>".into(),
        source: e,
    })?;
    let as_journal: Arc<dyn crate::apply::Journal> = journal.clone();
    let applied = runtime.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        // Ctrl-C: start nothing new, let running actions finish, then report.
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: finishing the running actions, starting no new ones");
                let _ = tx.send(true);
            }
        });
        ops::apply_with_items(
            prepared,
            as_journal,
            reporter,
            options,
            rx,
            Some((items_dir, run)),
        )
        .await
    })?;
    // The run's record says what its actions did; whether everything arrived is the exit code.
    let outcome = if applied.report.succeeded() {
        crate::state::RunOutcome::Succeeded
    } else if applied.report.interrupted {
        crate::state::RunOutcome::Interrupted
    } else {
        crate::state::RunOutcome::Failed
    };
    if applied.report.succeeded() {
        journal.settle(&settle)?;
    }
    journal.finish(outcome)?;
    eprint!("{}", render::apply_summary(&applied, style));
    Ok(if applied.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn state(cmd: StateCommand, style: Style) -> Result<ExitCode, Error> {
    use std::fmt::Write as _;
    let open = |a: &StateArgs| {
        crate::state::StateDb::open(&ops::state_dir(&a.plan, a.state_dir.as_deref()))
    };
    let mut out = String::new();
    match cmd {
        StateCommand::List(a) => {
            let db = open(&a)?;
            for r in db.runs()? {
                let _ = writeln!(
                    out,
                    "run {:>4}  {}  {:<11}  {} applied, {} failed, {} skipped  {}",
                    r.id,
                    r.started_at,
                    r.outcome.as_str(),
                    r.applied,
                    r.failed,
                    r.skipped,
                    r.plan_file
                );
            }
            if out.is_empty() {
                out.push_str("No runs yet.\n");
            }
        }
        StateCommand::Show { state: a, run } => {
            let db = open(&a)?;
            let Some(r) = db.run(run)? else {
                eprintln!("There is no run {run}; `mailplan state list` shows the runs.");
                return Ok(ExitCode::FAILURE);
            };
            let _ = writeln!(
                out,
                "run {} of {} ({}), {} → {}",
                r.id,
                r.plan_file,
                r.outcome.as_str(),
                r.started_at,
                r.ended_at.unwrap_or_default()
            );
            for a in db.run_actions(run)? {
                let _ = writeln!(
                    out,
                    "  {:<8} {} ({} ms){}",
                    a.status.as_str(),
                    a.action_id,
                    a.duration_ms,
                    a.error.map(|e| format!(": {e}")).unwrap_or_default()
                );
            }
        }
        StateCommand::Backups { state: a, dn } => {
            let db = open(&a)?;
            for b in db.backups(dn.as_deref())? {
                let _ = writeln!(
                    out,
                    "{}  run {:>4}  {}  (before {})",
                    b.taken_at, b.run, b.dn, b.action_id
                );
            }
            if out.is_empty() {
                out.push_str("No backups.\n");
            }
        }
        StateCommand::Restore {
            state: a,
            dn,
            auto_approve,
        } => {
            let spec = ops::load_checked_spec(&a.plan)?;
            let db = open(&a)?;
            let lock = db.lock()?;
            let _destination = ops::lock_destination(&spec)?;
            let prepared = ops::prepare_restore(spec, &db, &dn)?;
            print_text(&prepared.plan, style)?;
            if !prepared.plan.has_changes() {
                return Ok(ExitCode::SUCCESS);
            }
            if !auto_approve && !confirm()? {
                eprintln!("Restore cancelled.");
                return Ok(ExitCode::FAILURE);
            }
            let code = execute(prepared, db, 1, None)?;
            lock.release()?;
            return Ok(code);
        }
        StateCommand::Items { state: a, bad } => {
            let db = open(&a)?;
            for (mailbox, kind, count, bytes) in db.ledger_summary()? {
                let one = count == 1;
                let what = match kind.as_str() {
                    "mail" if one => "message copied",
                    "mail" => "messages copied",
                    "event" if one => "event copied",
                    "event" => "events copied",
                    "contact" if one => "contact copied",
                    "contact" => "contacts copied",
                    crate::items::mail::FOLDER_KIND if one => "folder made or subscribed",
                    crate::items::mail::FOLDER_KIND => "folders made or subscribed",
                    k if k.starts_with("bad-") && one => "bad item skipped",
                    k if k.starts_with("bad-") => "bad items skipped",
                    _ => "items",
                };
                let size = if kind.starts_with("bad-") || kind == crate::items::mail::FOLDER_KIND {
                    String::new()
                } else {
                    format!(" ({})", crate::items::human_bytes(bytes))
                };
                let _ = writeln!(
                    out,
                    "{mailbox}  {:>7} {what}{size}{}",
                    render::text::thousands(count),
                    kind.strip_prefix("bad-")
                        .map(|k| format!(" ({k})"))
                        .unwrap_or_default()
                );
                if bad && kind.starts_with("bad-") {
                    for item in db.ledger_identities(&mailbox, &kind)? {
                        let _ = writeln!(out, "    {item}");
                    }
                }
            }
            if out.is_empty() {
                out.push_str("No items copied yet.\n");
            }
        }
        StateCommand::Unlock(a) => {
            let db = open(&a)?;
            match db.lock_holder()? {
                Some(h) => {
                    db.force_unlock()?;
                    eprintln!(
                        "Removed the lock held by pid {} on {} since {}.",
                        h.pid, h.host, h.started_at
                    );
                }
                None => eprintln!("The state is not locked."),
            }
        }
    }
    print(&out)
}

/// Asks for `yes` at a terminal, as Terraform does; without a terminal nothing is assumed.
fn confirm() -> Result<bool, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::NotConfirmed);
    }
    eprint!(
        "\nDo you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
    );
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Error::Write {
            path: "<stdin>".into(),
            source: e,
        })?;
    Ok(answer.trim() == "yes")
}
