//! Plans: the data (`model`), how they are made (`planner`), their dependency graph (`graph`) and
//! the saved-plan file format (`saved`), and what earlier applies left for it (`history`).

pub mod addresses;
pub mod flavor;
pub mod graph;
pub mod history;
pub mod model;
pub mod planner;
pub mod restore;
pub mod saved;
pub mod undo;

pub use history::History;
pub use model::*;
pub use planner::{PlanError, plan, plan_with_items};
