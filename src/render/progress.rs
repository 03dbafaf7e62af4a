//! `state progress --all`: every wave a shared state holds item work for, a line each, from
//! rows the state read. It only renders: it never reads the state nor decides what a wave is.

use std::fmt::Write as _;

use crate::state::units::WaveRow;

/// One line per wave, sorted as given (by name); `this` is marked as the plan file's own.
pub fn waves(rows: &[WaveRow], this: &str) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("No wave has item work queued in this database.\n");
        return out;
    }
    for w in rows {
        let _ = write!(
            out,
            "{}{}: {} units: {} done, {} running, {} queued, {} failed; {} items ({})",
            w.wave,
            if w.wave == this { " (this plan)" } else { "" },
            w.units,
            w.done,
            w.running,
            w.queued,
            w.failed,
            super::text::thousands(w.copied),
            crate::items::human_bytes(w.bytes),
        );
        match w.since_start {
            Some(s) if s >= 1.0 && w.running + w.queued > 0 => {
                let _ = write!(
                    out,
                    " in {s:.0} s, {:.1} items/s; {} held by {} workers",
                    w.copied as f64 / s,
                    w.running,
                    w.holders
                );
            }
            _ => {}
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(wave: &str, done: u64, running: u64, queued: u64, failed: u64) -> WaveRow {
        WaveRow {
            wave: wave.into(),
            units: done + running + queued + failed,
            done,
            running,
            queued,
            failed,
            copied: 12_345,
            bytes: 3 << 20,
            since_start: Some(100.0),
            holders: running,
        }
    }

    #[test]
    fn each_wave_is_a_line_and_the_plans_own_is_marked() {
        let rows = [
            row("plan a.yaml -> destination x", 3, 2, 1, 0),
            row("plan b.yaml -> destination x", 4, 0, 0, 1),
        ];
        insta::assert_snapshot!(waves(&rows, "plan b.yaml -> destination x"), @r"
        plan a.yaml -> destination x: 6 units: 3 done, 2 running, 1 queued, 0 failed; 12,345 items (3.0 MiB) in 100 s, 123.5 items/s; 2 held by 2 workers
        plan b.yaml -> destination x (this plan): 5 units: 4 done, 0 running, 0 queued, 1 failed; 12,345 items (3.0 MiB)
        ");
    }

    #[test]
    fn no_wave_says_so() {
        assert_eq!(
            waves(&[], "w"),
            "No wave has item work queued in this database.\n"
        );
    }
}
