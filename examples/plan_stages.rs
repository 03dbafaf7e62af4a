//! Times each stage of `mailplan plan` on one plan file, with the memory in use after it:
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

fn stage<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    eprintln!(
        "{name:<12} {:>8.3} s  {:>6} MiB",
        t.elapsed().as_secs_f64(),
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
    let matches = stage("match", || {
        matching::match_all(spec, source, destination, &history.links)
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
