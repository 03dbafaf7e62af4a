//! `state`: what the state database beside a plan file holds (runs, their actions, backups,
//! the ledger of copied items, the lock) as text for people, and `restore`, which puts an entry
//! back from its latest backup through an apply [`Session`].
//!
//! It reads the state and words it; it never changes the state except through `unlock` and a
//! restore's session, and it never prints.

use std::fmt::Write as _;
use std::path::Path;

use super::apply::Session;
use super::{
    Error, Outcome, Prepared, load_checked_spec, load_inputs_for, lock_destination,
    state_location_of,
};
use crate::directory::ldif;
use crate::render;
use crate::spec::Spec;
use crate::state::StateDb;

/// Which state database: the plan file's, or `--state-dir`.
pub struct StateRequest<'a> {
    pub plan_file: &'a Path,
    pub state_dir: Option<&'a Path>,
}

impl StateRequest<'_> {
    fn open(&self) -> Result<StateDb, Error> {
        Ok(StateDb::open_at(&state_location_of(
            self.plan_file,
            self.state_dir,
        )?)?)
    }
}

/// The runs, one line each.
pub fn list(request: &StateRequest<'_>) -> Result<Outcome, Error> {
    let db = request.open()?;
    let mut out = String::new();
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
    Ok(Outcome::out(out))
}

/// One run and what each of its actions did.
pub fn show(request: &StateRequest<'_>, run: i64) -> Result<Outcome, Error> {
    let db = request.open()?;
    let Some(r) = db.run(run)? else {
        return Ok(Outcome {
            out: String::new(),
            note: Some(format!(
                "There is no run {run}; `mailplan state list` shows the runs."
            )),
            ok: false,
        });
    };
    let mut out = String::new();
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
    Ok(Outcome::out(out))
}

/// The backups, of every entry or of `dn`.
pub fn backups(request: &StateRequest<'_>, dn: Option<&str>) -> Result<Outcome, Error> {
    let db = request.open()?;
    let mut out = String::new();
    for b in db.backups(dn)? {
        let _ = writeln!(
            out,
            "{}  run {:>4}  {}  (before {})",
            b.taken_at, b.run, b.dn, b.action_id
        );
    }
    if out.is_empty() {
        out.push_str("No backups.\n");
    }
    Ok(Outcome::out(out))
}

/// The ledger of copied items by mailbox and kind; with `bad`, each bad item skipped.
pub fn items(request: &StateRequest<'_>, bad: bool) -> Result<Outcome, Error> {
    let db = request.open()?;
    let mut out = String::new();
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
    Ok(Outcome::out(out))
}

/// Removes the apply lock, whoever holds it.
pub fn unlock(request: &StateRequest<'_>) -> Result<Outcome, Error> {
    let db = request.open()?;
    let note = match db.lock_holder()? {
        Some(h) => {
            db.force_unlock()?;
            format!(
                "Removed the lock held by pid {} on {} since {}.",
                h.pid, h.host, h.started_at
            )
        }
        None => "The state is not locked.".to_string(),
    };
    Ok(Outcome::note(note))
}

/// Prepares the restore of `dn` from its latest backup, under the state's lock and the
/// destination's: a session to review and execute as an apply's.
pub fn restore(request: &StateRequest<'_>, dn: &str) -> Result<Session, Error> {
    let spec = load_checked_spec(request.plan_file)?;
    let db = request.open()?;
    let lock = db.lock()?;
    let destination = lock_destination(&spec)?;
    let prepared = prepare_restore(spec, &db, dn)?;
    Ok(Session::restore(prepared, db, lock, destination))
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
    let former_groups = if inputs.destination.get(&entry.dn).is_none() {
        former_groups(state, &backup, &entry.dn)?
    } else {
        Vec::new()
    };
    let plan = crate::plan::restore::restore_in(&entry, &inputs.destination, &former_groups);
    let fingerprint = crate::plan::saved::text_fingerprint(&inputs.spec.text);
    Ok(Prepared {
        plan_file,
        inputs,
        plan,
        recorded: crate::apply::Recorded::none(),
        fingerprint,
    })
}

/// The groups that held `dn` as a member before the run of `backup` moved its memberships away:
/// the groups that run backed up with `dn` among their members, each once, with the value as
/// the group held it.
fn former_groups(
    state: &crate::state::StateDb,
    backup: &crate::state::Backup,
    dn: &crate::directory::Dn,
) -> Result<Vec<crate::plan::restore::FormerGroup>, Error> {
    let mut out: Vec<crate::plan::restore::FormerGroup> = Vec::new();
    for b in state.backups(None)? {
        if b.run != backup.run || b.id == backup.id {
            continue;
        }
        let entries = ldif::parse_entries(&b.ldif, None).map_err(|e| Error::BadBackup {
            dn: b.dn.clone(),
            message: e.to_string(),
        })?;
        for group in entries {
            let Some(members) = group.get("member") else {
                continue;
            };
            let held = members.iter().find(|v| {
                v.as_str()
                    .and_then(|t| crate::directory::Dn::parse(t).ok())
                    .is_some_and(|m| &m == dn)
            });
            if let Some(value) = held
                && !out.iter().any(|f| f.group == group.dn)
            {
                out.push(crate::plan::restore::FormerGroup {
                    group: group.dn.clone(),
                    value: value.clone(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(out)
}

/// Prepares the undo of run `run`, under the state's lock and the destination's: a session to
/// review and execute as an apply's, recorded as undoing that run.
pub fn undo(request: &StateRequest<'_>, run: i64) -> Result<Session, Error> {
    let spec = load_checked_spec(request.plan_file)?;
    let db = request.open()?;
    let lock = db.lock()?;
    let destination = lock_destination(&spec)?;
    let prepared = prepare_undo(spec, &db, run)?;
    Ok(Session::undo(prepared, db, lock, destination, run))
}

/// The plan that undoes run `run`, with the inputs to apply it. Refused for a run the state
/// does not hold, and for one an earlier undo already undid (a run recorded as undoing it that
/// succeeded: every action applied and no entry refused).
pub fn prepare_undo(
    spec: Spec,
    state: &crate::state::StateDb,
    run: i64,
) -> Result<Prepared, Error> {
    if state.run(run)?.is_none() {
        return Err(Error::NoRun(run));
    }
    for by in state.undone_by(run)? {
        if state
            .run(by)?
            .is_some_and(|r| r.outcome == crate::state::RunOutcome::Succeeded)
        {
            return Err(Error::AlreadyUndone { run, by });
        }
    }
    let plan_file = spec.path.clone();
    let inputs = load_inputs_for(spec)?;
    let (touched, imports) = run_writes(state, run)?;
    let plan = crate::plan::undo::undo(run, &touched, &imports, &inputs.destination);
    let fingerprint = crate::plan::saved::text_fingerprint(&inputs.spec.text);
    Ok(Prepared {
        plan_file,
        inputs,
        plan,
        recorded: crate::apply::Recorded::none(),
        fingerprint,
    })
}

/// Every entry run `run` wrote, as it was before (its first backup in the run) and as the run
/// left it (its last after-image), in the order the run first touched them; and the item
/// imports it ran (not skipped), by action id.
fn run_writes(
    state: &crate::state::StateDb,
    run: i64,
) -> Result<(Vec<crate::plan::undo::Touched>, Vec<String>), Error> {
    use crate::directory::Dn;
    use crate::plan::undo::{Left, Touched};
    let parse = |dn: &str, text: &str| -> Result<Option<crate::directory::Entry>, Error> {
        Ok(ldif::parse_entries(text, None)
            .map_err(|e| Error::BadBackup {
                dn: dn.into(),
                message: e.to_string(),
            })?
            .into_iter()
            .next())
    };
    let mut touched: Vec<Touched> = Vec::new();
    let index = |touched: &mut Vec<Touched>, dn: Dn| -> usize {
        match touched.iter().position(|t| t.dn == dn) {
            Some(i) => i,
            None => {
                touched.push(Touched {
                    dn,
                    before: None,
                    after: Left::Unknown,
                });
                touched.len() - 1
            }
        }
    };
    // Oldest first: the first backup of an entry in the run is how it was before the run.
    let mut backups: Vec<crate::state::Backup> = state
        .backups(None)?
        .into_iter()
        .filter(|b| b.run == run)
        .collect();
    backups.reverse();
    for b in &backups {
        let Some(entry) = parse(&b.dn, &b.ldif)? else {
            continue;
        };
        let i = index(&mut touched, entry.dn.clone());
        if touched[i].before.is_none() {
            touched[i].before = Some(entry);
        }
    }
    // Whether `action_id` created `dn`: a create, or a restore that added the entry back (a
    // restore that modified one backed it up first). An entry the run created did not exist
    // before the run, whatever later actions of the run backed it up before changing it.
    let creates = |action_id: &str, dn: &Dn| {
        let kind = action_id.split(':').next().unwrap_or_default();
        kind == crate::plan::ActionKind::CreateMailbox.as_str()
            || kind == crate::plan::ActionKind::CreateGroup.as_str()
            || (kind == crate::plan::ActionKind::RestoreEntry.as_str()
                && Dn::parse(action_id.split_once(':').map_or("", |(_, t)| t))
                    .is_ok_and(|t| &t == dn)
                && !backups
                    .iter()
                    .any(|b| b.action_id == action_id && Dn::parse(&b.dn).is_ok_and(|d| &d == dn)))
    };
    let mut imports = Vec::new();
    for a in state.run_actions(run)? {
        if a.kind.starts_with("import_") {
            if a.status != crate::state::ActionStatus::Skipped {
                imports.push(a.action_id);
            }
            continue;
        }
        // A create leaves no backup: its record (or its after-image) names it.
        if a.status == crate::state::ActionStatus::Applied
            && let Ok(dn) = Dn::parse(&a.target)
            && creates(&a.action_id, &dn)
        {
            let i = index(&mut touched, dn);
            touched[i].before = None;
        }
    }
    for after in state.after_images(run)? {
        let Ok(dn) = Dn::parse(&after.dn) else {
            continue;
        };
        if after.ldif.is_some() && creates(&after.action_id, &dn) {
            let i = index(&mut touched, dn.clone());
            touched[i].before = None;
        }
        let left = match &after.ldif {
            None => Left::Absent,
            Some(text) => match parse(&after.dn, text)? {
                Some(entry) => Left::Entry(entry),
                None => Left::Unknown,
            },
        };
        let i = index(&mut touched, dn);
        touched[i].after = left;
    }
    imports.sort();
    Ok((touched, imports))
}

/// The action and the source folder of a unit that copies one folder of a large mailbox.
fn folder_unit(r: &crate::state::units::UnitRow) -> Option<(&str, &str)> {
    let folder = r.folder.as_deref()?;
    let action = r.unit.strip_suffix(folder)?.strip_suffix('#')?;
    Some((action, folder))
}

/// `state set-cap`: sets the most connections all of mailplan may hold to `endpoint` at once,
/// in the shared state, where every worker reads it at its next acquisition and lease renewal.
pub fn set_cap(
    request: &StateRequest<'_>,
    endpoint: &str,
    connections: u32,
) -> Result<Outcome, Error> {
    let spec = load_checked_spec(request.plan_file)?;
    let used = crate::items::caps::plan_endpoints(&spec.items);
    let name = endpoint.trim().to_ascii_lowercase();
    if !used.contains(&name) {
        return Err(Error::UnknownEndpoint {
            endpoint: endpoint.to_owned(),
            used: if used.is_empty() {
                "no store of this plan file connects to a server".to_owned()
            } else {
                format!(
                    "the plan file's stores connect to {}",
                    used.iter()
                        .map(|e| format!("`{e}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        });
    }
    if connections == 0 {
        return Err(Error::ZeroCap(connections));
    }
    let db = request.open()?;
    let caps = db.caps().ok_or(Error::CapsNeedPostgres)?;
    let by = format!("state set-cap on {}", crate::state::host::hostname());
    caps.set_cap(&name, connections, &by)?;
    let lease = "within one lease of the workers (30 s unless `worker --lease` says otherwise)";
    let mut note = format!(
        "{name}: at most {connections} connections from now on; every worker follows {lease}."
    );
    let pair = spec.items.mail.as_ref().is_some_and(|m| {
        matches!((&m.source, &m.destination), (crate::spec::MailStore::Imap(s), crate::spec::MailStore::Imap(d))
            if crate::items::caps::imap_endpoint(s) == name && crate::items::caps::imap_endpoint(d) == name)
    });
    if pair && connections < 2 {
        note.push_str(
            "\nA pair of mail sessions needs 2 connections to it: no mailbox copies until the cap is raised.",
        );
    }
    Ok(Outcome {
        out: String::new(),
        note: Some(note),
        ok: true,
    })
}

/// The wave's item work (PostgreSQL state): units done, running, queued and failed, what they
/// copied, the rate and an estimate of the time left, how far each mailbox split into folder
/// units is, which worker holds what, and why each failed unit failed; with `all`, a line for
/// every wave the database holds units of.
pub fn progress(request: &StateRequest<'_>, all: bool) -> Result<Outcome, Error> {
    let db = request.open()?;
    let units = db.units().ok_or(Error::NeedsPostgres)?;
    if all {
        let waves = units.waves()?;
        return Ok(Outcome {
            ok: waves.iter().all(|w| w.failed == 0),
            out: render::progress::waves(&waves, units.wave()),
            note: None,
        });
    }
    let rows = units.unit_rows()?;
    let count = |state: &str| rows.iter().filter(|r| r.state == state).count();
    let (done, running, queued, failed) = (
        count("done"),
        count("running"),
        count("queued"),
        count("failed"),
    );
    let mut out = String::new();
    let _ = writeln!(out, "Wave: {}", units.wave());
    let _ = writeln!(
        out,
        "{} units: {done} done, {running} running, {queued} queued, {failed} failed",
        rows.len()
    );
    let copied: u64 = rows.iter().map(|r| r.copied).sum();
    let bytes: u64 = rows.iter().map(|r| r.bytes).sum();
    let wall = rows
        .iter()
        .filter_map(|r| r.since_start)
        .fold(0.0_f64, f64::max);
    let _ = write!(
        out,
        "Copied {} items ({})",
        render::text::thousands(copied),
        crate::items::human_bytes(bytes)
    );
    if wall >= 1.0 {
        let _ = write!(
            out,
            " in {:.0} s: {:.1} items/s, {}/s",
            wall,
            copied as f64 / wall,
            crate::items::human_bytes((bytes as f64 / wall) as u64)
        );
    }
    let left = running + queued;
    if left == 0 {
        out.push_str("; nothing left to do\n");
    } else if done > 0 && wall >= 1.0 {
        let _ = writeln!(
            out,
            "; about {:.0} s left",
            wall / done as f64 * left as f64
        );
    } else {
        out.push_str("; no estimate of the time left until a unit is done\n");
    }
    if let Some(caps) = db.caps() {
        for c in caps.cap_rows()? {
            let _ = writeln!(
                out,
                "  cap      {}  {} of {} connections in use (set by {} at {})",
                c.endpoint, c.in_use, c.connections, c.set_by, c.set_at
            );
        }
    }
    // Mailboxes copied as one unit per folder: how far each is.
    let mut split: std::collections::BTreeMap<&str, [usize; 4]> = Default::default();
    for r in &rows {
        if let Some((action, _)) = folder_unit(r) {
            let n = split.entry(action).or_default();
            match r.state.as_str() {
                "done" => n[0] += 1,
                "running" => n[1] += 1,
                "queued" => n[2] += 1,
                _ => n[3] += 1,
            }
        }
    }
    for (action, [d, r, q, f]) in &split {
        let _ = writeln!(
            out,
            "  split    {action} into {} folder units: {d} done, {r} running, {q} queued, {f} failed",
            d + r + q + f
        );
    }
    let shown = |r: &crate::state::units::UnitRow| match folder_unit(r) {
        Some((action, folder)) => format!("{action}, folder `{folder}`"),
        None => r.unit.clone(),
    };
    for r in rows.iter().filter(|r| r.state == "running") {
        let _ = writeln!(
            out,
            "  running  {}  held by {}, lease {}",
            shown(r),
            r.owner.as_deref().unwrap_or("nobody"),
            match r.lease_left {
                Some(s) if s >= 0.0 => format!("{s:.0} s left"),
                Some(s) => format!("expired {:.0} s ago (free to take over)", -s),
                None => "unknown".to_owned(),
            }
        );
    }
    for r in rows.iter().filter(|r| r.state == "failed") {
        let _ = writeln!(
            out,
            "  failed   {}  after {} attempts: {}",
            shown(r),
            r.attempts,
            r.last_error.as_deref().unwrap_or("no reason recorded")
        );
    }
    Ok(Outcome {
        out,
        note: None,
        ok: failed == 0,
    })
}
