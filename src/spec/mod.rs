//! The plan file: YAML in, validated `Spec` out, with every error located in the file.
//!
//! All use of serde_yaml stays inside this module, so a maintained fork can replace it in one place.

pub mod model;

pub use model::*;
