//! Every JSON shape on the Openloop wire, with serde and OpenAPI schema derives.
//!
//! Architecture invariant: this crate knows no I/O (no HTTP framework, no SQL, no clock
//! except for formatting helpers). Handlers, the OpenAPI document and the `/tools`
//! catalogue all use these definitions, so the contract is stated once.

pub mod agents;
pub mod artifacts;
pub mod chat;
pub mod error;
pub mod events;
pub mod flows;
pub mod ids;
pub mod legacy;
pub mod mcp_servers;
pub mod request;
pub mod schema;
pub mod sessions;
pub mod skills;
pub mod tenancy;
pub mod time;
pub mod tools;
pub mod triggers;

pub use error::{ApiError, ErrorCode};
