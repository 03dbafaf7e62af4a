//! mailplan: a declarative plan-and-apply engine for mailbox and directory migrations.
//!
//! The data flows one way: a plan file (`spec`) and two directory snapshots (`directory`) go into
//! `matching`, whose result the `plan` module turns into a graph of actions that `render` prints.
//! `matching` and `plan` are pure functions: no I/O, no clock, no randomness.

pub mod directory;
pub mod generate;
pub mod matching;
pub mod plan;
pub mod spec;
