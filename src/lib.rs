//! mailplan: a declarative plan-and-apply engine for mailbox and directory migrations.
//!
//! The data flows one way: a plan file (`spec`) and two directory snapshots (`directory`) go into
//! `matching`, whose result the `plan` module turns into a graph of actions that `render` prints.
//! `matching` and `plan` are pure functions: no I/O, no clock, no randomness. `ops` does the I/O
//! behind the commands, and `cli` is the thin command line on top.

pub mod apply;
pub mod atomic_file;
pub mod cli;
pub mod directory;
pub mod generate;
pub mod items;
pub mod lockfile;
pub mod matching;
pub mod ops;
pub mod parallel;
pub mod plan;
pub mod render;
pub mod snippet;
pub mod spec;
pub mod state;
pub mod tls;
pub mod verify;
pub mod xml_text;
