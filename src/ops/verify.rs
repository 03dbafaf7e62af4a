//! `mailplan verify`: after an apply, what arrived, per person and folder.
//!
//! Reads the source and destination stores and the ledger (through `verify::gather`) and
//! renders the verdict; it never writes anything, anywhere. The verdict itself is the pure
//! function in `verify`.

use std::path::Path;

use super::{Error, state_location_of};

/// The verification of a wave, rendered as text or JSON, and whether everything the plan
/// meant to copy arrived.
pub struct Verified {
    pub output: String,
    pub complete: bool,
}

/// Verifies the wave of `plan_file` against the ledger in `state` (default: beside the plan).
pub fn verify(plan_file: &Path, state: Option<&Path>, json: bool) -> Result<Verified, Error> {
    let state = state_location_of(plan_file, state)?;
    let v = crate::verify::gather::wave(plan_file, &state)?;
    Ok(Verified {
        output: if json {
            crate::render::verify::json(&v)
        } else {
            crate::render::verify::text(&v)
        },
        complete: v.complete(),
    })
}
