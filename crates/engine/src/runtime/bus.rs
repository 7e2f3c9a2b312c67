//! In-process fan-out of persisted events to live readers. Readers that lag or connect
//! late read the event log from the store instead.

use std::sync::Arc;

use store::EventRecord;
use tokio::sync::broadcast;

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<EventRecord>>,
}

impl Default for EventBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(8192);
        EventBus { tx }
    }
}

impl EventBus {
    pub fn publish(&self, events: Vec<EventRecord>) {
        for e in events {
            // No receiver is fine: nobody is streaming.
            let _ = self.tx.send(Arc::new(e));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.tx.subscribe()
    }
}
