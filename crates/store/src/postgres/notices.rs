//! Notices from other replicas: `LISTEN openloop_events, openloop_cancel` on a dedicated
//! connection (triggers in `schema/0005_notify.sql` send them at commit).

use async_trait::async_trait;
use futures::stream::BoxStream;
use sqlx::postgres::PgListener;

use super::PgStore;
use crate::{Notice, NoticeStore, Result};

const EVENTS: &str = "openloop_events";
const CANCEL: &str = "openloop_cancel";

#[async_trait]
impl NoticeStore for PgStore {
    async fn notices(&self) -> Result<Option<BoxStream<'static, Notice>>> {
        let mut listener = PgListener::connect_with(self.pool()).await?;
        listener.listen_all([EVENTS, CANCEL]).await?;
        let stream = futures::stream::unfold(listener, |mut listener| async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        if let Some(notice) = parse(n.channel(), n.payload()) {
                            return Some((notice, listener));
                        }
                    }
                    // The connection was lost and is re-established on the next call;
                    // whatever was sent meanwhile is gone, so readers re-read.
                    Ok(None) => return Some((Notice::Resync, listener)),
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for notices failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                }
            }
        });
        Ok(Some(Box::pin(stream)))
    }
}

fn parse(channel: &str, payload: &str) -> Option<Notice> {
    match channel {
        EVENTS => {
            let (session_id, seq) = payload.rsplit_once(' ')?;
            Some(Notice::Events { session_id: session_id.to_string(), seq: seq.parse().ok()? })
        }
        CANCEL => Some(Notice::CancelRequested { run_id: payload.to_string() }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert_eq!(parse(EVENTS, "ses_a1 42"), Some(Notice::Events { session_id: "ses_a1".into(), seq: 42 }));
        assert_eq!(parse(EVENTS, "ses_a1"), None);
        assert_eq!(parse(EVENTS, "ses_a1 x"), None);
        assert_eq!(parse(CANCEL, "run_1"), Some(Notice::CancelRequested { run_id: "run_1".into() }));
        assert_eq!(parse("other", "x"), None);
    }
}
