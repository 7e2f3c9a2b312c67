//! Durable execution of agent runs: workers claim runs from the store's queue with a
//! lease, heartbeat while running and commit every step; a reaper returns expired
//! leases to the queue; a run interrupted too often fails with `InterruptedError`.

pub mod agent_loop;
pub mod bus;
pub mod parts;
pub mod worker;

use std::collections::HashMap;
use std::time::Duration;

/// Runtime settings (API.md §9.1).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// How long an export's CSV stays downloadable (§6.3).
    pub export_retention: Duration,
    /// Flow runs executed at once by this process.
    pub flow_workers: usize,
    pub workers: usize,
    pub lease: Duration,
    pub max_attempts: i64,
    pub agent_max_concurrency: i64,
    pub org_max_concurrency: i64,
    pub agent_max_queue: i64,
    /// Over a limit: reject with 429 instead of queueing.
    pub overflow_reject: bool,
    pub max_steps_default: u32,
    pub max_steps_cap: u32,
    pub run_timeout: Duration,
    pub credits_per_1k_tokens: f64,
    /// `provider/model` → (input per 1k, output per 1k).
    pub pricing: HashMap<String, (f64, f64)>,
    pub ssrf_allow_private: bool,
    pub ssrf_allowlist: Vec<String>,
    /// Stdio MCP servers (commands this process starts) may be registered.
    pub mcp_allow_stdio: bool,
    /// Events of a session are deleted this long after its last run ended.
    pub stream_retention: Duration,
    /// Incognito sessions disappear this long after their last activity (§7.10).
    pub incognito_ttl: Duration,
    /// Other processes (replicas) share the database: start-up releases no leases.
    pub shared_database: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            workers: 16,
            flow_workers: 8,
            export_retention: Duration::from_secs(7 * 86400),
            lease: Duration::from_secs(30),
            max_attempts: 3,
            agent_max_concurrency: 4,
            org_max_concurrency: 16,
            agent_max_queue: 100,
            overflow_reject: false,
            max_steps_default: 25,
            max_steps_cap: 100,
            run_timeout: Duration::from_secs(1800),
            credits_per_1k_tokens: 1.0,
            pricing: HashMap::new(),
            ssrf_allow_private: false,
            ssrf_allowlist: vec![],
            mcp_allow_stdio: false,
            stream_retention: Duration::from_secs(86400),
            incognito_ttl: Duration::from_secs(900),
            shared_database: false,
        }
    }
}

/// Why a running run must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Running,
    /// S9: end the run `cancelled`.
    Cancelled,
    /// S16: superseded by a new run (`finishReason: "interrupted"`).
    Interrupted,
    /// The lease moved to another worker: stop without writing.
    LeaseLost,
    /// The process is shutting down: stop without writing; another start resumes.
    Shutdown,
}
