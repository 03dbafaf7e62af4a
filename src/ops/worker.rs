//! `mailplan worker`: claims the item work an apply queued in the plan file's PostgreSQL state
//! and copies it, with several tasks at once, until no unit of the wave is queued or running
//! anywhere (or, following, until stopped); then says what it did and which units failed.
//!
//! It reads the plan file, its secrets and the source directory (to name each person's
//! mailboxes), never the destination directory: the directory phase is apply's alone. The
//! claiming and copying is `items::work`; this module only sets it up and words the outcome.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{Error, Outcome, load_checked_spec, load_directory, state_location};
use crate::items::work::{self, Settings};
use crate::state::{Location, RunOutcome, StateDb};

/// What `worker` is asked for.
pub struct WorkerRequest<'a> {
    pub plan_file: &'a Path,
    /// Units copied at once by this process.
    pub concurrency: usize,
    /// Wait for more work when the queue is empty, until interrupted.
    pub follow: bool,
    /// Queue the wave's failed units again first.
    pub retry_failed: bool,
    /// Overrides of the lease, the attempts and the first backoff.
    pub lease: Option<Duration>,
    pub max_attempts: Option<u32>,
    pub backoff: Option<Duration>,
}

/// Runs a worker to the end of the queue.
pub fn worker(request: &WorkerRequest<'_>) -> Result<Outcome, Error> {
    let spec = load_checked_spec(request.plan_file)?;
    let state = state_location(&spec, None)?;
    if matches!(state, Location::Dir(_)) {
        return Err(Error::NeedsPostgres);
    }
    let db = StateDb::open_at(&state)?;
    let units = db.units().ok_or(Error::NeedsPostgres)?;
    super::write_plan_caps(&spec, &db)?;
    let mut out = String::new();
    if request.retry_failed {
        let n = units.retry_failed()?;
        let _ = writeln!(out, "Queued {n} failed units again.");
    }
    let fingerprint = crate::plan::saved::text_fingerprint(&spec.text);
    let run = db.begin_run(&spec.path.display().to_string(), &fingerprint)?;
    let source = load_directory("source", &spec.source.directory, spec.source.ldif_file_urls)?;
    let endpoints = crate::items::endpoints_for(&spec, &source);
    drop(source);
    super::warn_items(&spec);
    let mut settings = Settings::new(work::owner_here());
    if let Some(lease) = request.lease {
        settings.lease = lease;
    }
    let importer = Arc::new(
        crate::items::import::ItemImporter::new(spec.items.clone(), endpoints, state.clone(), run)
            .with_lease(settings.lease),
    );
    if let Some(n) = request.max_attempts {
        settings.max_attempts = n.max(1);
    }
    if let Some(b) = request.backoff {
        settings.backoff = b;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Worker(e.to_string()))?;
    let (concurrency, follow) = (request.concurrency, request.follow);
    let worked = runtime.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: finishing the running units, claiming no new ones");
                let _ = tx.send(true);
            }
        });
        work::work(importer.clone(), settings, concurrency, follow, rx)
            .await
            .map(|s| (s, importer.take_skipped()))
    });
    let (summary, skipped) = match worked {
        Ok(w) => w,
        Err(e) => {
            let _ = db.finish_run(run, RunOutcome::Failed);
            return Err(Error::Worker(e));
        }
    };
    let failed: Vec<_> = units
        .unit_rows()?
        .into_iter()
        .filter(|r| r.state == "failed")
        .collect();
    let ok = failed.is_empty() && skipped.is_empty();
    db.finish_run(
        run,
        if ok {
            RunOutcome::Succeeded
        } else {
            RunOutcome::Failed
        },
    )?;
    let copied: u64 = summary.done.iter().map(|(_, r)| r.copied).sum();
    let bytes: u64 = summary.done.iter().map(|(_, r)| r.bytes).sum();
    let _ = writeln!(
        out,
        "This worker finished {} units: {} items copied ({}); {} attempts queued again, {} units taken over by another worker.",
        summary.done.len(),
        crate::render::text::thousands(copied),
        crate::items::human_bytes(bytes),
        summary.retried,
        summary.lost
    );
    if let (n @ 1.., waited) = crate::items::throttle::totals() {
        let _ = writeln!(
            out,
            "Servers asked to slow down {}; this worker waited {} in all (summed over parallel sessions).",
            crate::render::text::count(n, "time", "times"),
            crate::items::throttle::human(waited)
        );
    }
    for s in &skipped {
        let _ = writeln!(
            out,
            "bad item skipped: {}: {}: {}",
            s.source, s.item.location, s.item.message
        );
    }
    for f in &failed {
        let _ = writeln!(
            out,
            "failed unit: {} after {} attempts: {}",
            f.unit,
            f.attempts,
            f.last_error.as_deref().unwrap_or("no reason recorded")
        );
    }
    if !failed.is_empty() {
        let _ = writeln!(
            out,
            "{} units failed; `mailplan worker --retry-failed` takes them again.",
            failed.len()
        );
    }
    Ok(Outcome {
        out: String::new(),
        note: Some(out.trim_end().to_owned()),
        ok,
    })
}
