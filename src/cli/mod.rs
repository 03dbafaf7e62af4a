//! The command line: clap types and one thin function per command.
//!
//! Each function decides nothing: it calls the operation in `ops`, prints what that returns
//! (the plan and results to standard output, notes to standard error), asks for `yes` at a
//! terminal when the operation says approval is needed, and maps the outcome to an exit code
//! (0 success or no changes, 1 error, 2 changes present with `--detailed-exitcode`). Loading,
//! planning, applying and the wording of results belong to `ops`, not here.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::generate::GenerateOptions;
use crate::ops::show::Format;
use crate::ops::{self, Error, Outcome};
use crate::plan::Plan;
use crate::render::{self, text::Style};

#[derive(Debug, Parser)]
#[command(
    name = "mailplan",
    version,
    about = "Plan and apply mailbox and directory migrations, Terraform-style: directory objects, and each \
person's mail, calendars and contacts",
    long_about = "mailplan reads a YAML migration plan, matches every source person (Lotus Domino, LDAP, \
Active Directory) to what already exists at the destination (Active Directory with Exchange attributes, \
or an LDAP mail directory), and prints the dependency graph of actions that would migrate them: create \
mailbox, convert NT account, convert mail-enabled user, move memberships, delete contact, merge \
attributes, distribution lists. It also copies each person's items (mail folders, calendars and contacts) \
to the destination, each item once.\n\nA plan is deterministic: the same inputs give the same bytes, so saved \
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
        /// Print the plan as JSON (schemas/plan-output.schema.json); the same as `--format json`.
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// text for people, json for machines (schemas/plan-output.schema.json), carbonio-prov
        /// for a `carbonio prov -f` batch of a Carbonio plan's directory actions, to run on the
        /// server by hand (item imports and persons left out are listed in its `#` lines).
        #[arg(long, value_enum)]
        format: Option<PlanFormat>,
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
    /// With a PostgreSQL state (`state: postgres:`): claim the item work that apply queued and
    /// copy it, until no unit of the wave is queued or running anywhere; start it on any
    /// number of machines. Exit 1 when a unit of the wave ended failed.
    Worker(WorkerArgs),
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
    /// Print the plan as JSON (schemas/plan-output.schema.json) instead of text; the same as
    /// `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// text for people, json for machines (schemas/plan-output.schema.json), carbonio-prov for
    /// a `carbonio prov -f` batch of a Carbonio plan's directory actions, to run on the server
    /// by hand (item imports and persons left out are listed in its `#` lines).
    #[arg(long, value_enum)]
    pub format: Option<PlanFormat>,
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
    /// At a terminal, show each soft candidate beside its person and ask: confirm (write it
    /// to `matching.confirmed`), ignore (write the candidate to `matching.ignore`: never a
    /// match), skip, or quit (keep the answers given so far). The answers are written into the
    /// plan file, its comments and layout kept, and the plan is then made again and shown.
    #[arg(long)]
    pub interactive: bool,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The YAML plan file that was applied.
    pub plan: PathBuf,
    /// Units this process copies at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// When the queue is empty, wait for more work instead of exiting (stop with Ctrl-C).
    #[arg(long)]
    pub follow: bool,
    /// First queue again the units that failed after all their attempts.
    #[arg(long)]
    pub retry_failed: bool,
    /// Seconds a claim holds without renewal; another worker takes a unit over once it ends.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lease: u64,
    /// Attempts of a unit before it is marked failed.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// Seconds before a failed unit is tried again; doubled for each further attempt (at most
    /// 300).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub backoff: u64,
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
    /// With a PostgreSQL state: queue the item work for `mailplan worker` without copying it
    /// here.
    #[arg(long)]
    pub no_items: bool,
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
    /// Undo a whole run: delete what it created, set back what it changed, add back what it
    /// deleted, each only while it is still as the run left it.
    Undo {
        #[command(flatten)]
        state: StateArgs,
        /// The run number (from `state list`).
        run: i64,
        /// Undo without asking for `yes` first.
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
    /// With a PostgreSQL state: the wave's item work, done, running, queued and failed, what
    /// it copied, the rate, the time left, and which worker holds what.
    Progress {
        #[command(flatten)]
        state: StateArgs,
        /// Every wave the database holds item work for, a line each.
        #[arg(long)]
        all: bool,
    },
    /// With a PostgreSQL state: set the most connections all workers together may hold to a
    /// server endpoint (`host:port`), while the wave runs; workers follow within one lease.
    SetCap {
        #[command(flatten)]
        state: StateArgs,
        /// The endpoint, `host:port` as the plan file's IMAP store or DAV URL names it.
        endpoint: String,
        /// The most connections at once (at least 1).
        connections: u32,
    },
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
pub enum PlanFormat {
    Text,
    Json,
    CarbonioProv,
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
        Command::Validate { plan } => say(ops::plan::validate(&plan)?),
        Command::Plan(args) => plan(args, style),
        Command::Apply(args) => apply(args, style),
        Command::State(cmd) => state(cmd, style),
        Command::Show { file, json, format } => {
            let (plan, flavor) = ops::show::show(&file)?;
            print_plan(&plan, plan_format(json, format), flavor, style)
        }
        Command::Graph { input, format } => print(&ops::show::graph(
            &input,
            match format {
                GraphFormat::Dot => ops::show::GraphFormat::Dot,
                GraphFormat::Mermaid => ops::show::GraphFormat::Mermaid,
            },
        )?),
        Command::Report { input, format, out } => say(ops::show::report(
            &input,
            match format {
                ReportFormat::Markdown => render::report::Format::Markdown,
                ReportFormat::Csv => render::report::Format::Csv,
                ReportFormat::Html => render::report::Format::Html,
            },
            out.as_deref(),
        )?),
        Command::Verify {
            plan,
            json,
            state_dir,
        } => {
            let verified = ops::verify::verify(&plan, state_dir.as_deref(), json)?;
            print(&verified.output)?;
            Ok(if verified.complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Worker(a) => say(ops::worker::worker(&ops::worker::WorkerRequest {
            plan_file: &a.plan,
            concurrency: usize::from(a.concurrency),
            follow: a.follow,
            retry_failed: a.retry_failed,
            lease: Some(std::time::Duration::from_secs(a.lease)),
            max_attempts: Some(a.max_attempts),
            backoff: Some(std::time::Duration::from_secs(a.backoff)),
        })?),
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
            say(ops::generate::generate(&out, &opts)?)
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

/// `--format`, or `--json`, or text.
fn plan_format(json: bool, format: Option<PlanFormat>) -> Format {
    match format {
        Some(PlanFormat::Json) => Format::Json,
        Some(PlanFormat::CarbonioProv) => Format::CarbonioProv,
        Some(PlanFormat::Text) => Format::Text,
        None if json => Format::Json,
        None => Format::Text,
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

/// Prints a plan, streamed as it is rendered; `flavor` is its destination's, when known.
fn print_plan(
    plan: &Plan,
    format: Format,
    flavor: Option<crate::spec::Flavor>,
    style: Style,
) -> Result<ExitCode, Error> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let written = ops::show::write_plan(plan, format, flavor, style, &mut out);
    let flushed = out.flush();
    match written {
        Err(Error::Write { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e),
        Ok(()) => match flushed {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
            Err(e) => Err(Error::Write {
                path: "<stdout>".into(),
                source: e,
            }),
        },
    }
}

/// Prints what an operation has to say: its text on stdout, its note on stderr.
fn say(outcome: Outcome) -> Result<ExitCode, Error> {
    if !outcome.out.is_empty() {
        print(&outcome.out)?;
    }
    if let Some(note) = &outcome.note {
        eprintln!("{note}");
    }
    Ok(if outcome.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn plan(args: PlanArgs, style: Style) -> Result<ExitCode, Error> {
    if args.interactive {
        ask_about_candidates(&args)?;
    }
    let planned = ops::plan::plan(&ops::plan::PlanRequest {
        plan_file: &args.plan,
        targets: &args.targets,
        state_dir: args.state_dir.as_deref(),
        out: args.out.as_deref(),
    })?;
    print_plan(
        &planned.plan,
        plan_format(args.json, args.format),
        Some(planned.inputs.spec.destination.flavor),
        style,
    )?;
    for note in planned.notes() {
        eprintln!("{note}");
    }
    let code = match planned.verdict() {
        ops::plan::Verdict::LeftOut => ExitCode::FAILURE,
        ops::plan::Verdict::Changes if args.detailed_exitcode => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    };
    planned.leak();
    Ok(code)
}

fn apply(args: ApplyArgs, style: Style) -> Result<ExitCode, Error> {
    let start = ops::apply::start(&ops::apply::ApplyRequest {
        input: &args.input,
        targets: &args.targets,
        state_dir: args.state_dir.as_deref(),
        no_items: args.no_items,
    })?;
    match start {
        ops::apply::Start::NoChanges(note) => {
            eprintln!("{note}");
            Ok(ExitCode::SUCCESS)
        }
        ops::apply::Start::Ready(session) => review_and_execute(
            *session,
            "Apply",
            args.auto_approve,
            usize::from(args.parallelism),
            style,
        ),
    }
}

/// Shows a session's plan and asks for approval as the session says, then executes it and
/// prints its summary. `what` names the command in "… cancelled.".
fn review_and_execute(
    session: ops::apply::Session,
    what: &str,
    auto_approve: bool,
    parallelism: usize,
    style: Style,
) -> Result<ExitCode, Error> {
    if session.shows_plan() {
        print_plan(session.plan(), Format::Text, None, style)?;
    }
    session.check_safety()?;
    if session.is_done() {
        session.finish_unchanged()?;
        return Ok(ExitCode::SUCCESS);
    }
    if session.needs_approval() && !auto_approve && !confirm()? {
        eprintln!("{what} cancelled.");
        return Ok(ExitCode::FAILURE);
    }
    let reporter: Arc<dyn crate::apply::Reporter> = if std::io::stderr().is_terminal() {
        Arc::new(crate::apply::reporter::Bar::new())
    } else {
        Arc::new(crate::apply::reporter::Lines)
    };
    let executed = session.execute(parallelism, reporter)?;
    eprint!("{}", executed.summary);
    Ok(if executed.succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn state(cmd: StateCommand, style: Style) -> Result<ExitCode, Error> {
    match cmd {
        StateCommand::List(a) => say(ops::state::list(&request(&a))?),
        StateCommand::Show { state: a, run } => say(ops::state::show(&request(&a), run)?),
        StateCommand::Backups { state: a, dn } => {
            say(ops::state::backups(&request(&a), dn.as_deref())?)
        }
        StateCommand::Restore {
            state: a,
            dn,
            auto_approve,
        } => {
            let session = ops::state::restore(&request(&a), &dn)?;
            // A restore puts back one entry: one write at a time.
            review_and_execute(session, "Restore", auto_approve, 1, style)
        }
        StateCommand::Undo {
            state: a,
            run,
            auto_approve,
        } => {
            let session = ops::state::undo(&request(&a), run)?;
            // In plan order, one write at a time, as a restore.
            review_and_execute(session, "Undo", auto_approve, 1, style)
        }
        StateCommand::Items { state: a, bad } => say(ops::state::items(&request(&a), bad)?),
        StateCommand::Unlock(a) => say(ops::state::unlock(&request(&a))?),
        StateCommand::Progress { state: a, all } => say(ops::state::progress(&request(&a), all)?),
        StateCommand::SetCap {
            state: a,
            endpoint,
            connections,
        } => say(ops::state::set_cap(&request(&a), &endpoint, connections)?),
    }
}

/// Which state database a `state` subcommand reads.
fn request(a: &StateArgs) -> ops::state::StateRequest<'_> {
    ops::state::StateRequest {
        plan_file: &a.plan,
        state_dir: a.state_dir.as_deref(),
    }
}

/// `plan --interactive`: asks about each soft candidate at the terminal and has the answers
/// written into the plan file. Without a terminal nothing is asked and nothing written.
fn ask_about_candidates(args: &PlanArgs) -> Result<(), Error> {
    use crate::spec::edit::Answers;
    ops::interactive::refuse_saved_plan(&args.plan)?;
    if !std::io::stdin().is_terminal() {
        return Err(Error::NoTerminalToAsk);
    }
    let asking = ops::interactive::questions(&ops::plan::PlanRequest {
        plan_file: &args.plan,
        targets: &args.targets,
        state_dir: args.state_dir.as_deref(),
        out: None,
    })?;
    if asking.questions.is_empty() {
        eprintln!("No soft candidates to ask about.");
        return Ok(());
    }
    let mut answers = Answers::default();
    let mut skipped = Vec::new();
    let mut decided: Vec<&crate::directory::Dn> = Vec::new();
    let mut quit = false;
    for q in &asking.questions {
        // A person confirmed once is decided; an object ignored once is no one's candidate.
        let ignored = answers
            .ignore
            .iter()
            .any(|i| i.eq_ignore_ascii_case(&q.candidate.to_string()));
        if quit || decided.contains(&&q.source) || ignored {
            if quit {
                skipped.push((q.source.clone(), q.candidate.clone()));
            }
            continue;
        }
        eprint!("{}", render::candidate::side_by_side(&q.pair));
        match ask_choice()? {
            Choice::Confirm => {
                answers
                    .confirmed
                    .push((q.source.to_string(), q.candidate.to_string()));
                decided.push(&q.source);
            }
            Choice::Ignore => answers.ignore.push(q.candidate.to_string()),
            Choice::Skip => skipped.push((q.source.clone(), q.candidate.clone())),
            Choice::Quit => {
                skipped.push((q.source.clone(), q.candidate.clone()));
                quit = true;
            }
        }
    }
    let outcome = asking.record(&answers, &skipped)?;
    if let Some(note) = &outcome.note {
        eprintln!("{note}");
    }
    Ok(())
}

/// An answer about one soft candidate.
enum Choice {
    Confirm,
    Ignore,
    Skip,
    Quit,
}

/// Asks until the answer is one of c, i, s, q (or their words); the end of input is a quit.
fn ask_choice() -> Result<Choice, Error> {
    use std::io::{BufRead, Read};
    loop {
        eprint!("\n  [c]onfirm this match, [i]gnore this object (never match), [s]kip, [q]uit: ");
        let mut answer = String::new();
        // One line, of a bounded length.
        let read = std::io::stdin()
            .lock()
            .take(1024)
            .read_line(&mut answer)
            .map_err(|e| Error::Write {
                path: "<stdin>".into(),
                source: e,
            })?;
        if read == 0 {
            eprintln!();
            return Ok(Choice::Quit);
        }
        match answer.trim().to_ascii_lowercase().as_str() {
            "c" | "confirm" => return Ok(Choice::Confirm),
            "i" | "ignore" => return Ok(Choice::Ignore),
            "s" | "skip" => return Ok(Choice::Skip),
            "q" | "quit" => return Ok(Choice::Quit),
            _ => eprintln!("  Answer c, i, s or q."),
        }
    }
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
