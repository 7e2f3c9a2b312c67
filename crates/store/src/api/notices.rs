//! Cross-process notices: what another replica on the same database just did that a
//! process must react to (a live stream reader, a run it executes). Single-process
//! backends have none: everything happens in the process that needs to know.

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::Result;

/// Something another process committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A session's event log grew up to `seq` (read the events from the log).
    Events { session_id: String, seq: i64 },
    /// A cancel was requested for a run (`cancel_requested` set).
    CancelRequested { run_id: String },
    /// Notices may have been missed (the listening connection was re-established):
    /// readers should re-read what they follow.
    Resync,
}

#[async_trait]
pub trait NoticeStore: Send + Sync {
    /// A stream of notices committed by any process on this database, in commit order,
    /// or `None` when the backend is single-process.
    async fn notices(&self) -> Result<Option<BoxStream<'static, Notice>>> {
        Ok(None)
    }
}
