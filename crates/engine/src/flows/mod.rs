//! Flows: saved flow documents (versioned), a durable DAG runtime, the node library, and
//! the F1–F7 / management APIs over them.

pub mod api;
pub mod document;
mod file_loop;
pub mod kinds;
pub mod nodes;
pub mod runner;
