//! Per-key and per-IP quotas (API.md §5.1), GCRA via `governor`.

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
            keys: keyed(cfg.requests, window),
            unauth: keyed(cfg.unauth_per_min, Duration::from_secs(60)),
            files: keyed(cfg.files_per_min, Duration::from_secs(60)),
            cfg,
            clock: DefaultClock::default(),
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
    pub fn check_key(&self, key_id: &str) -> Option<Decision> {
        let lim = self.keys.as_ref()?;
        Some(self.decide(lim, &key_id.to_string(), self.cfg.requests, self.cfg.window_secs.max(1)))
    }

    /// Charges a request with missing/invalid credentials to the client IP.
    pub fn check_unauth(&self, ip: IpAddr) -> Option<Decision> {
        let lim = self.unauth.as_ref()?;
        Some(self.decide(lim, &ip, self.cfg.unauth_per_min, 60))
    }

    /// Charges a signed-URL download to the client IP.
    pub fn check_files(&self, ip: IpAddr) -> Option<Decision> {
        let lim = self.files.as_ref()?;
        Some(self.decide(lim, &ip, self.cfg.files_per_min, 60))
    }

    /// Drops idle buckets (called periodically).
    pub fn housekeeping(&self) {
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
