//! The engine's one source of wall-clock time, injectable so tests can move time
//! (signed-URL and cursor expiry, leases, retention) without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

pub trait Clock: Send + Sync {
    /// Microseconds since the Unix epoch.
    fn now_micros(&self) -> i64;

    fn now_secs(&self) -> i64 {
        self.now_micros().div_euclid(1_000_000)
    }
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> i64 {
        wire::time::now_micros()
    }
}

/// A clock that moves only when told to (tests).
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// Starts at the system time.
    pub fn new() -> Self {
        ManualClock(AtomicI64::new(wire::time::now_micros()))
    }

    pub fn advance(&self, d: std::time::Duration) {
        self.0.fetch_add(d.as_micros().min(i64::MAX as u128) as i64, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let c = ManualClock::new();
        let t0 = c.now_micros();
        assert_eq!(c.now_micros(), t0);
        c.advance(std::time::Duration::from_secs(90));
        assert_eq!(c.now_micros(), t0 + 90_000_000);
        assert_eq!(c.now_secs(), (t0 + 90_000_000).div_euclid(1_000_000));
    }
}

#[cfg(test)]
mod engine_time {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::pagination::{PageRequest, SortVal};
    use crate::Engine;

    async fn engine(clock: Arc<ManualClock>) -> Engine {
        let url = format!("sqlite:file:clock-{}?mode=memory&cache=shared", wire::ids::random_base62(12));
        let store = Arc::new(store::sqlite::SqliteStore::open(&url).await.expect("in-memory store"));
        let signer = crate::signing::Signer::new(vec![("k1".into(), vec![7u8; 32])]);
        let catalogue = crate::catalogue::ModelCatalogue::new(vec![], &[], None);
        Engine::new(store, signer, catalogue, crate::EngineConfig::default()).with_clock(clock)
    }

    fn req(cursor: Option<&str>) -> PageRequest<'_> {
        PageRequest { route: "S3", binding: "b".into(), page_size: None, cursor, default_page_size: Some(20) }
    }

    /// Cursors live 24 h by the engine's clock: moved by hand, no sleeping.
    #[tokio::test]
    async fn cursors_expire_by_the_engine_clock() {
        let clock = Arc::new(ManualClock::new());
        let e = engine(clock.clone()).await;
        let cursor = e.next_cursor(&req(None), 20, &(SortVal::Int(5), "ses_x".into()), true).expect("cursor");
        clock.advance(Duration::from_secs(23 * 3600));
        let start = e.page_start(&req(Some(&cursor)), true).expect("still valid after 23 h");
        assert_eq!(start.after, Some((SortVal::Int(5), "ses_x".to_string())));
        clock.advance(Duration::from_secs(2 * 3600));
        let err = e.page_start(&req(Some(&cursor)), true).err().expect("expired after 25 h");
        assert!(err.message.contains("expired"), "{}", err.message);
    }
}
