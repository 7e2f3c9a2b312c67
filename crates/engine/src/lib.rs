//! The Openloop domain: identity and visibility, agents and their versions, the model
//! catalogue, signed tokens; later sessions, runs, flows and exports.
//!
//! Architecture invariant: this crate knows no HTTP. It takes already-parsed inputs
//! (JSON values, query maps) and returns wire shapes or `wire::ApiError`s; domain
//! rules live here once, for every API surface (v1, legacy, tools, MCP).

pub mod agents;
pub mod auth;
pub mod catalogue;
pub mod diff;
pub mod idempotency;
pub mod input;
pub mod pagination;
pub mod signing;
pub mod tenancy;
pub mod validate;

use std::sync::Arc;

pub use auth::{Caller, KeyInfo, KeyKind, Scope};
pub use catalogue::ModelCatalogue;
pub use signing::Signer;
use store::{Store, StoreError};
use wire::ApiError;

/// Engine-wide settings (everything else is wiring done by the binary).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub public_url: String,
}

pub struct Engine {
    pub store: Arc<dyn Store>,
    pub signer: Signer,
    pub catalogue: ModelCatalogue,
    pub config: EngineConfig,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        signer: Signer,
        catalogue: ModelCatalogue,
        config: EngineConfig,
    ) -> Self {
        Engine {
            store,
            signer,
            catalogue,
            config,
        }
    }
}

/// Store failures become a generic 500; the cause is logged, never sent.
pub(crate) fn db(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "store error");
    ApiError::internal()
}
