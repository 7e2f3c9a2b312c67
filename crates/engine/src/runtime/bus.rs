//! In-process fan-out of persisted events to live readers. Readers that lag or connect
//! late read the event log from the store instead; events written by another replica
//! arrive as wakes (session ids) that send a reader back to the log.

use std::sync::Arc;

use store::EventRecord;
use tokio::sync::broadcast;

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<EventRecord>>,
    wakes: broadcast::Sender<Arc<str>>,
}

/// A reader's two feeds (subscribe before reading the log, so nothing falls between).
pub struct Subscription {
    pub events: broadcast::Receiver<Arc<EventRecord>>,
    /// Session ids whose log grew elsewhere; `""` means "every session" (notices may
    /// have been missed).
    pub wakes: broadcast::Receiver<Arc<str>>,
}

impl Default for EventBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(8192);
        let (wakes, _) = broadcast::channel(4096);
        EventBus { tx, wakes }
    }
}

impl EventBus {
    pub fn publish(&self, events: Vec<EventRecord>) {
        for e in events {
            // No receiver is fine: nobody is streaming.
            let _ = self.tx.send(Arc::new(e));
        }
    }

    pub fn subscribe(&self) -> Subscription {
        Subscription { events: self.tx.subscribe(), wakes: self.wakes.subscribe() }
    }

    /// Another process appended to `session_id`'s log (`""`: possibly to any).
    pub fn wake(&self, session_id: &str) {
        let _ = self.wakes.send(Arc::from(session_id));
    }
}
