//! Progress of an apply for people: a progress bar with counts on a terminal, plain lines
//! otherwise (logs, CI). Reporting only reports; it never changes what happens.

use std::io::Write as _;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use crate::plan::Action;

use super::executor::{ActionResult, Reporter};

/// One line per finished action, on standard error.
pub struct Lines;

impl Reporter for Lines {
    fn begin(&self, total: usize) {
        eprintln!(
            "applying {}",
            crate::render::text::count(total as u64, "action", "actions")
        );
    }
    fn finished(&self, action: &Action, result: &ActionResult) {
        let mut err = std::io::stderr().lock();
        let _ = match result {
            ActionResult::Applied => writeln!(err, "applied  {}", action.id),
            ActionResult::AlreadyApplied => {
                writeln!(err, "done     {} (applied by an earlier run)", action.id)
            }
            ActionResult::Failed {
                stale: true,
                message,
            } => writeln!(err, "stale    {}: {message}", action.id),
            ActionResult::Failed { message, .. } => {
                writeln!(err, "failed   {}: {message}", action.id)
            }
            ActionResult::Skipped { because } => {
                writeln!(err, "skipped  {} (because {because} failed)", action.id)
            }
            ActionResult::Queued => {
                writeln!(err, "queued   {} (for `mailplan worker`)", action.id)
            }
            ActionResult::NotStarted => Ok(()),
        };
    }
    fn end(&self) {}
}

/// A progress bar; failures are printed above it as they happen.
pub struct Bar {
    bar: Mutex<Option<ProgressBar>>,
}

impl Bar {
    pub fn new() -> Self {
        Bar {
            bar: Mutex::new(None),
        }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for Bar {
    fn begin(&self, total: usize) {
        let bar = ProgressBar::new(total as u64);
        if let Ok(style) = ProgressStyle::with_template(&bar_template(total)) {
            bar.set_style(style);
        }
        *self.bar.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar);
    }
    fn finished(&self, action: &Action, result: &ActionResult) {
        let guard = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        let Some(bar) = guard.as_ref() else { return };
        match result {
            ActionResult::Applied | ActionResult::AlreadyApplied | ActionResult::Queued => {}
            ActionResult::Failed { stale, message } => bar.println(format!(
                "{} {}: {message}",
                if *stale { "stale " } else { "failed" },
                action.id
            )),
            ActionResult::Skipped { because } => {
                bar.println(format!("skipped {} (because {because} failed)", action.id))
            }
            ActionResult::NotStarted => return,
        }
        bar.inc(1);
    }
    fn end(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

/// The bar's layout: `12/40 actions`, `0/1 action`.
fn bar_template(total: usize) -> String {
    let unit = if total == 1 { "action" } else { "actions" };
    format!("{{bar:40}} {{pos}}/{{len}} {unit} {{elapsed_precise}} {{msg}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_counts_one_action_and_many_actions() {
        assert_eq!(
            bar_template(1),
            "{bar:40} {pos}/{len} action {elapsed_precise} {msg}"
        );
        assert_eq!(
            bar_template(2),
            "{bar:40} {pos}/{len} actions {elapsed_precise} {msg}"
        );
        assert!(ProgressStyle::with_template(&bar_template(1)).is_ok());
    }
}
