//! Following a session's event log: stored events first, then live ones from the bus,
//! without gaps or duplicates, until the first `final` event. A reader never affects the
//! run: when it goes away, only the reading stops.

use std::sync::Arc;

use futures::channel::mpsc;
use futures::SinkExt;
use store::EventRecord;
use tokio::sync::broadcast;

use crate::runtime::bus::Subscription;
use crate::Engine;

/// On a shared database a reader also re-reads the log this often, whatever it heard:
/// a lost notice delays an event by at most this much, never drops it.
const SHARED_POLL: std::time::Duration = std::time::Duration::from_secs(1);

fn is_final(e: &EventRecord) -> bool {
    e.data.get("final").and_then(serde_json::Value::as_bool) == Some(true)
}

/// Sends events with `seq > after` to `tx` until a `final` event was sent, the reader
/// hung up, or the bus closed. `sub` must have been subscribed before `after` was read.
pub async fn follow(engine: Arc<Engine>, session_id: String, after: i64, sub: Subscription, mut tx: mpsc::Sender<EventRecord>) {
    let Subscription { events: mut rx, mut wakes } = sub;
    let shared = engine.config.runtime.shared_database;
    let mut last = after;
    loop {
        // Catch up from the log.
        loop {
            let batch = match engine.store.events_after(&session_id, last, 500).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "reading the event log failed");
                    return;
                }
            };
            if batch.is_empty() {
                break;
            }
            for e in batch {
                last = e.seq;
                let fin = is_final(&e);
                if tx.send(e).await.is_err() || fin {
                    return;
                }
            }
        }
        // Live, until a gap, a wake from another replica or (shared database) the poll
        // interval sends us back to the log.
        let poll = tokio::time::sleep(SHARED_POLL);
        tokio::pin!(poll);
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(e) if e.session_id == session_id => {
                        if e.seq <= last {
                            continue;
                        }
                        if e.seq != last + 1 {
                            break;
                        }
                        last = e.seq;
                        let fin = is_final(&e);
                        if tx.send((*e).clone()).await.is_err() || fin {
                            return;
                        }
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                w = wakes.recv() => match w {
                    Ok(id) if id.is_empty() || *id == *session_id => break,
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = &mut poll, if shared => break,
            }
        }
    }
}
