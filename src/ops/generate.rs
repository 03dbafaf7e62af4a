//! `generate`: writes a synthetic source and destination directory and a plan file over them,
//! for benchmarks and demonstrations.
//!
//! It only writes into the folder it is given, and says what it wrote; the synthesis itself is
//! `crate::generate`'s.

use std::path::Path;

use super::{Error, Outcome};
use crate::generate::{GenerateOptions, generate_into};

/// Writes the synthetic directories and plan file into `out`.
pub fn generate(out: &Path, options: &GenerateOptions) -> Result<Outcome, Error> {
    let summary = generate_into(out, options).map_err(|e| Error::Write {
        path: out.to_path_buf(),
        source: e,
    })?;
    Ok(Outcome::note(format!(
        "wrote {} source and {} destination entries, and plan.yaml, to {}",
        summary.source_entries,
        summary.destination_entries,
        out.display()
    )))
}
