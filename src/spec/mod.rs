//! The plan file: YAML in, validated `Spec` out, with every error located in the file.
//!
//! `raw` mirrors the YAML (serde and JSON Schema; public as the file format's own description),
//! `span` indexes where each value is written, `load` turns text into a `Spec` collecting every
//! problem, `error` shapes those problems as miette diagnostics, and `schema` generates
//! `schemas/plan.schema.json`. Consumers read `model`; nothing outside this module sees YAML.
//!
//! All use of serde_yaml stays inside this module, so a maintained fork can replace it in one place.

pub mod edit;
mod error;
mod load;
pub mod model;
pub mod raw;
mod schema;
mod span;

pub use error::{Label, PlanFileError, Problem, SHOWN, codes};
pub use load::{
    DEFAULT_GROUP_FILTER, DEFAULT_MERGE_ATTRIBUTES, check_against, check_secrets, load,
    missing_placeholders, parse, parse_bytes,
};
pub use model::*;
pub use schema::json_schema;
