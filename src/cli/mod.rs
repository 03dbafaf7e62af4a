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
    /// Print a JSON Schema: of plan files (`plan`) or of `--json` output (`output`).
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
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A YAML plan file, or a saved plan made with `plan --out`.
    pub input: PathBuf,
    /// Apply a YAML plan file without asking for `yes` first.
    #[arg(long)]
    pub auto_approve: bool,
    /// How many actions may run at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub parallelism: u16,
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
}

pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    let style = Style {
        color: cli.color.enabled(std::io::stdout().is_terminal()),
    };
    match cli.command {
        Command::Validate { plan } => validate(plan),
        Command::Plan(args) => plan(args, style),
        Command::Apply(args) => apply(args, style),
        Command::Show { file, json } => show(file, json, style),
        Command::Graph { input, format } => graph(input, format),
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
    let inputs = ops::load_inputs(&args.plan)?;
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
    // The process ends here: freeing hundreds of thousands of entries one by one would only
    // delay the exit by seconds on large directories.
    std::mem::forget(inputs);
    std::mem::forget(plan);
    Ok(if args.detailed_exitcode && changes {
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
        print(&render::text::render(plan, style))
    }
}

fn show(file: PathBuf, json: bool, style: Style) -> Result<ExitCode, Error> {
    let saved = ops::load_saved(&file)?;
    print(&if json {
        render::json::render(&saved.plan)
    } else {
        render::text::render(&saved.plan, style)
    })
}

fn graph(input: PathBuf, format: GraphFormat) -> Result<ExitCode, Error> {
    let plan: Plan = if ops::is_saved_plan(&input) {
        ops::load_saved(&input)?.plan
    } else {
        ops::make_plan(&ops::load_inputs(&input)?)?
    };
    print(&match format {
        GraphFormat::Dot => render::graph::dot(&plan),
        GraphFormat::Mermaid => render::graph::mermaid(&plan),
    })
}

fn apply(args: ApplyArgs, style: Style) -> Result<ExitCode, Error> {
    use std::sync::Arc;
    let saved = ops::is_saved_plan(&args.input);
    let prepared = if saved {
        ops::prepare_saved(&args.input)?
    } else {
        ops::prepare_plan_file(&args.input)?
    };
    if !saved {
        print(&render::text::render(&prepared.plan, style))?;
        if !prepared.plan.has_changes() {
            return Ok(ExitCode::SUCCESS);
        }
        if !args.auto_approve && !confirm()? {
            eprintln!("Apply cancelled.");
            return Ok(ExitCode::FAILURE);
        }
    } else if !prepared.plan.has_changes() {
        eprintln!("The saved plan has no changes.");
        return Ok(ExitCode::SUCCESS);
    }
    let reporter: Arc<dyn crate::apply::Reporter> = if std::io::stderr().is_terminal() {
        Arc::new(crate::apply::reporter::Bar::new())
    } else {
        Arc::new(crate::apply::reporter::Lines)
    };
    let journal: Arc<dyn crate::apply::Journal> = Arc::new(crate::apply::MemoryJournal::default());
    let options = crate::apply::Options {
        parallelism: usize::from(args.parallelism),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Write {
            path: "<runtime>".into(),
            source: e,
        })?;
    let report = runtime.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        // Ctrl-C: start nothing new, let running actions finish, then report.
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: finishing the running actions, starting no new ones");
                let _ = tx.send(true);
            }
        });
        ops::apply(prepared, journal, reporter, options, rx).await
    })?;
    eprint!("{}", render::apply_summary(&report, style));
    Ok(if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
