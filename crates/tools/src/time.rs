//! `current_time`: the UTC clock.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{parse_args, schema_of, Tool, ToolContext, ToolError};

/// A source of "now".
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// `current_time()`: returns `{"utc": "<RFC 3339, microseconds, Z>", "unix": <seconds>}`.
#[derive(Clone)]
pub struct CurrentTime {
    clock: Clock,
}

/// `current_time` takes no arguments.
#[derive(Debug, Deserialize, JsonSchema)]
struct NoArgs {}

impl CurrentTime {
    pub const NAME: &'static str = "current_time";

    /// Uses the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(Utc::now))
    }

    /// Uses `clock` (for tests).
    pub fn with_clock(clock: Clock) -> Self {
        Self { clock }
    }
}

impl Default for CurrentTime {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CurrentTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentTime").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Tool for CurrentTime {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn description(&self) -> &str {
        "Returns the current date and time in UTC, as an RFC 3339 timestamp (`utc`) and as Unix \
         seconds (`unix`)."
    }

    fn parameters(&self) -> Value {
        schema_of::<NoArgs>()
    }

    fn read_only(&self) -> bool {
        true
    }

    async fn call(&self, args: Value, _ctx: &ToolContext) -> Result<Value, ToolError> {
        // Arguments are ignored beyond being an object (or absent).
        if !args.is_object() {
            parse_args::<NoArgs>(args)?;
        }
        let now = (self.clock)();
        Ok(json!({
            "utc": now.to_rfc3339_opts(SecondsFormat::Micros, true),
            "unix": now.timestamp(),
        }))
    }
}
