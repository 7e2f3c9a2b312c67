//! Named failure points (the `fail` crate, as Meilisearch's scheduler uses): compiled in
//! only with the `failpoints` feature, which test builds turn on; release builds carry
//! none. Tests start the server with `FAILPOINTS`, e.g.
//! `FAILPOINTS=run.after_tool_commit=1*return` (the first time only), to crash, fail or
//! stall at an exact step instead of hoping a `kill -9` lands there.
//!
//! Points:
//! - `run.after_tool_commit` (`return` = the process dies as under `kill -9`): a tool
//!   call's result is committed, the next model call has not started.
//! - `run.before_finish` (`return` = dies): the run's work is done, its terminal state
//!   not yet written.
//! - `run.model_call` (`return` = the provider fails): the model call of a step.

/// Reads `FAILPOINTS`; keep the guard for the life of the process.
pub fn setup() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

/// A point where `return` ends the process at once, as `kill -9` would: no cleanup,
/// nothing more written.
#[macro_export]
macro_rules! crash_point {
    ($name:expr) => {
        fail::fail_point!($name, |_| {
            eprintln!("failpoint {}: crashing", $name);
            std::process::abort()
        })
    };
}
