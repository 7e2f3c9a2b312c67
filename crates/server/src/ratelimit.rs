//! Per-key and per-IP quotas (API.md §5.1), GCRA via `governor` in this process, or in
//! the database when replicas share one (`store::RateLimitStore`), so a quota holds
//! across them.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use wire::{ApiError, ErrorCode};

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Requests per window per API key; 0 disables key limiting and its headers.
    pub requests: u32,
    pub window_secs: u64,
    pub unauth_per_min: u32,
    pub files_per_min: u32,
}

type Keyed<K> = RateLimiter<K, DashMapStateStore<K>, DefaultClock, StateInformationMiddleware>;

pub struct Limiter {
    /// Buckets shared with other replicas; when it answers, the local ones are unused.
    shared: Option<std::sync::Arc<dyn store::Store>>,
    cfg: RateLimitConfig,
    keys: Option<Keyed<String>>,
    unauth: Option<Keyed<IpAddr>>,
    files: Option<Keyed<IpAddr>>,
    clock: DefaultClock,
}

/// A decision with what the headers need.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
    pub window_secs: u64,
}

fn quota(limit: u32, window: Duration) -> Option<Quota> {
    let n = NonZeroU32::new(limit)?;
    let period = window / limit;
    Quota::with_period(period.max(Duration::from_nanos(1))).map(|q| q.allow_burst(n))
}

fn keyed<K: std::hash::Hash + Eq + Clone>(limit: u32, window: Duration) -> Option<Keyed<K>> {
    quota(limit, window).map(|q| RateLimiter::dashmap(q).with_middleware::<StateInformationMiddleware>())
}

impl Limiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        let window = Duration::from_secs(cfg.window_secs.max(1));
        Limiter {
            shared: None,
            keys: keyed(cfg.requests, window),
            unauth: keyed(cfg.unauth_per_min, Duration::from_secs(60)),
            files: keyed(cfg.files_per_min, Duration::from_secs(60)),
            cfg,
            clock: DefaultClock::default(),
        }
    }

    /// Keeps the buckets in `store` when it shares them (PostgreSQL), so every replica
    /// charges the same ones.
    pub fn with_shared_buckets(mut self, store: std::sync::Arc<dyn store::Store>) -> Self {
        self.shared = Some(store);
        self
    }

    /// The shared bucket's decision, or `None` to decide locally (no shared buckets, or
    /// the database did not answer: limiting degrades to per replica, never to an error).
    async fn decide_shared(&self, bucket: String, limit: u32, window_secs: u64) -> Option<Decision> {
        let shared = self.shared.as_ref()?;
        let now = wire::time::now_micros();
        let period = (window_secs as i64 * 1_000_000 / limit.max(1) as i64).max(1);
        match shared.gcra_take(&bucket, now, period, limit as i64).await {
            Ok(Some(o)) => Some(gcra_decision(o, now, period, limit, window_secs)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "shared rate-limit bucket unavailable; limiting in this process");
                None
            }
        }
    }

    fn decide<K: std::hash::Hash + Eq + Clone>(&self, lim: &Keyed<K>, key: &K, limit: u32, window_secs: u64) -> Decision {
        let per_cell = window_secs as f64 / limit as f64;
        match lim.check_key(key) {
            Ok(snap) => {
                let remaining = snap.remaining_burst_capacity().min(limit);
                // Seconds until the bucket is full again.
                let reset = ((limit - remaining) as f64 * per_cell).ceil() as u64;
                Decision { allowed: true, limit, remaining, reset_secs: reset, window_secs }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Decision { allowed: false, limit, remaining: 0, reset_secs: wait.as_secs_f64().ceil().max(1.0) as u64, window_secs }
            }
        }
    }

    /// Charges one request to an API key; `None` when key limiting is disabled.
    pub async fn check_key(&self, key_id: &str) -> Option<Decision> {
        let lim = self.keys.as_ref()?;
        let window = self.cfg.window_secs.max(1);
        if let Some(d) = self.decide_shared(format!("key:{key_id}"), self.cfg.requests, window).await {
            return Some(d);
        }
        Some(self.decide(lim, &key_id.to_string(), self.cfg.requests, window))
    }

    /// Charges a request with missing/invalid credentials to the client IP.
    pub async fn check_unauth(&self, ip: IpAddr) -> Option<Decision> {
        let lim = self.unauth.as_ref()?;
        if let Some(d) = self.decide_shared(format!("unauth:{ip}"), self.cfg.unauth_per_min, 60).await {
            return Some(d);
        }
        Some(self.decide(lim, &ip, self.cfg.unauth_per_min, 60))
    }

    /// Charges a signed-URL download to the client IP.
    pub async fn check_files(&self, ip: IpAddr) -> Option<Decision> {
        let lim = self.files.as_ref()?;
        if let Some(d) = self.decide_shared(format!("files:{ip}"), self.cfg.files_per_min, 60).await {
            return Some(d);
        }
        Some(self.decide(lim, &ip, self.cfg.files_per_min, 60))
    }

    /// Drops idle buckets (called periodically).
    pub async fn housekeeping(&self) {
        if let Some(shared) = &self.shared {
            if let Err(e) = shared.gcra_forget_idle(wire::time::now_micros()).await {
                tracing::debug!(error = %e, "forgetting idle shared buckets failed");
            }
        }
        if let Some(l) = &self.keys {
            l.retain_recent();
        }
        if let Some(l) = &self.unauth {
            l.retain_recent();
        }
        if let Some(l) = &self.files {
            l.retain_recent();
        }
    }
}

/// Headers from a shared bucket: the same figures `decide` derives from governor's.
fn gcra_decision(o: store::GcraOutcome, now: i64, period: i64, limit: u32, window_secs: u64) -> Decision {
    let secs = |micros: i64| (micros.max(0) as f64 / 1e6).ceil() as u64;
    let tolerance = period.saturating_mul(limit as i64);
    if o.allowed {
        let remaining = ((now + tolerance - o.tat) / period).clamp(0, limit as i64) as u32;
        Decision { allowed: true, limit, remaining, reset_secs: secs(o.tat - now), window_secs }
    } else {
        let retry = o.tat.max(now) + period - tolerance - now;
        Decision { allowed: false, limit, remaining: 0, reset_secs: secs(retry).max(1), window_secs }
    }
}

impl Decision {
    /// `ratelimit-*`, `RateLimit`, `RateLimit-Policy` (and `Retry-After` when limited).
    pub fn apply(&self, h: &mut HeaderMap) {
        let mut set = |name: &'static str, v: String| {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(HeaderName::from_static(name), v);
            }
        };
        set("ratelimit-limit", self.limit.to_string());
        set("ratelimit-remaining", self.remaining.to_string());
        set("ratelimit-reset", self.reset_secs.to_string());
        set("ratelimit-policy", format!("\"default\";q={};w={}", self.limit, self.window_secs));
        set("ratelimit", format!("\"default\";r={};t={}", self.remaining, self.reset_secs));
        if !self.allowed {
            set("retry-after", self.reset_secs.to_string());
        }
    }

    pub fn error(&self) -> ApiError {
        ApiError::new(
            ErrorCode::RateLimited,
            format!("Rate limit of {} requests per {} s exceeded; retry after {} s (ratelimit-reset).", self.limit, self.window_secs, self.reset_secs),
        )
        .detail("policy", "default")
        .detail("limit", self.limit)
        .detail("remaining", 0)
        .detail("reset", self.reset_secs)
        .retry_after(self.reset_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_bucket_headers() {
        let (now, period) = (10_000_000i64, 1_000_000i64);
        // A fresh bucket of 5 per 5 s after one request: 4 left, full again in 1 s.
        let d = gcra_decision(store::GcraOutcome { allowed: true, tat: now + period }, now, period, 5, 5);
        assert_eq!((d.allowed, d.remaining, d.reset_secs), (true, 4, 1));
        // The fifth request empties it.
        let d = gcra_decision(store::GcraOutcome { allowed: true, tat: now + 5 * period }, now, period, 5, 5);
        assert_eq!((d.remaining, d.reset_secs), (0, 5));
        // Refused: the next slot opens one period later.
        let d = gcra_decision(store::GcraOutcome { allowed: false, tat: now + 5 * period }, now, period, 5, 5);
        assert_eq!((d.allowed, d.reset_secs), (false, 1));
    }
}
