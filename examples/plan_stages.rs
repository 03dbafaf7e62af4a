//! Times each stage of `mailplan plan` on one plan file, with the CPU seconds the process spent
//! in it (on every thread: more than the wall time where a stage uses several cores, less where
//! it waits on a server) and the memory in use after it:
//! reading the plan file, both directories (side by side, as `mailplan plan` reads them),
//! matching, planning, the graph and the text.
//!
//!     cargo run --release --example plan_stages -- PLAN.yaml
//!
//! For finding where a large plan spends its time; it prints to stderr and changes nothing.

use std::error::Error;
use std::time::Instant;

use mailplan::{matching, ops, plan, render};

// The allocator the `mailplan` binary uses, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Resident memory of this process in MiB (Linux), or 0 where that cannot be read.
fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4 / 1024)
}

/// A writer that only counts what the renderer writes, as `mailplan plan >/dev/null` would.
struct Counted(usize);

impl std::io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// CPU seconds (user and system) this process has used so far, on all its threads.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given, and only that.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        return 0.0;
    }
    // SAFETY: zeroed is a valid rusage, and getrusage succeeded.
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn stage<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let out = f();
    eprintln!(
        "{name:<12} {:>8.3} s  {:>7.2} s CPU  {:>6} MiB",
        t.elapsed().as_secs_f64(),
        cpu_seconds() - cpu,
        rss_mib()
    );
    out
}

fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or("usage: plan_stages PLAN.yaml")?;
    let path = std::path::PathBuf::from(path);
    let spec = stage("plan file", || ops::load_spec(&path))?;
    drop(spec);
    // Both directories at once, as `mailplan plan` reads them.
    let inputs = stage("directories", || ops::load_inputs(&path))?;
    let (spec, source, destination) = (&inputs.spec, &inputs.source, &inputs.destination);
    let history = plan::History::default();
    // With what was worked out while the directories were read, as `mailplan plan` matches.
    let prepared = inputs.take_prepared();
    let matches = stage("match", || {
        matching::match_prepared(spec, source, destination, &history.links, prepared)
    });
    let plan = stage("plan", || {
        plan::plan(spec, source, destination, &matches, &history)
    })?;
    stage("graph", || plan::graph::ActionGraph::build(&plan))?;
    let mut text = Counted(0);
    stage("render", || {
        render::text::write(&plan, render::text::Style { color: false }, &mut text)
    })?;
    eprintln!(
        "{} actions, {} bytes of plan text",
        plan.actions.len(),
        text.0
    );
    Ok(())
}
