//! `Idempotency-Key` handling (API.md §5.2): scope, fingerprint, replay and conflicts.

use serde_json::Value;
use sha2::{Digest, Sha256};
use store::IdempotencyClaim;
use wire::{ApiError, ErrorCode};

use crate::{db, Engine};

const RETENTION_MICROS: i64 = 24 * 3600 * 1_000_000;
/// A claim not completed within this time is considered abandoned (crashed process).
const STALE_MICROS: i64 = 120 * 1_000_000;

/// 1–256 characters of `[!-~]`.
pub fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 256 || !key.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
        return Err(ApiError::new(ErrorCode::InvalidIdempotencyKey, "Idempotency-Key must be 1 to 256 printable ASCII characters without spaces.")
            .param("Idempotency-Key"));
    }
    Ok(())
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                canonical(&m[*k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// SHA-256 of the canonical JSON body and the sorted query (credentials excluded).
pub fn fingerprint(body: &Value, query: &[(String, String)]) -> Vec<u8> {
    let mut s = String::new();
    canonical(body, &mut s);
    let mut q: Vec<&(String, String)> = query.iter().filter(|(k, _)| k != "api_key").collect();
    q.sort();
    let mut h = Sha256::new();
    h.update(s.as_bytes());
    for (k, v) in q {
        h.update(b"\n");
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
    }
    h.finalize().to_vec()
}

/// The stored scope: (API key, route template, path ids, key), hashed so the key value
/// is never stored in clear.
pub fn scope(key_id: &str, route: &str, path_ids: &str, idem_key: &str) -> String {
    let mut h = Sha256::new();
    for part in [key_id, route, path_ids, idem_key] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    format!("{key_id}:{route}:{}", hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub enum Claimed {
    New,
    Replay { status: u16, body: Vec<u8> },
}

impl Engine {
    pub async fn claim_idempotency(&self, scope: &str, fingerprint: &[u8]) -> Result<Claimed, ApiError> {
        let now = self.now();
        match self.store.claim_idempotency(scope, fingerprint, now, now - RETENTION_MICROS, now - STALE_MICROS).await.map_err(db)? {
            IdempotencyClaim::New => Ok(Claimed::New),
            IdempotencyClaim::Replay { status, body } => Ok(Claimed::Replay { status, body }),
            IdempotencyClaim::Reused => {
                Err(ApiError::new(ErrorCode::IdempotencyKeyReused, "This Idempotency-Key was used with a different request; use a new key."))
            }
            IdempotencyClaim::InUse => {
                Err(ApiError::new(ErrorCode::IdempotencyKeyInUse, "The original request with this Idempotency-Key is still running; retry shortly.")
                    .retry_after(1))
            }
        }
    }

    /// Stores the outcome; 5xx outcomes are released instead (never stored).
    pub async fn finish_idempotency(&self, scope: &str, status: u16, body: &[u8]) {
        let res =
            if status >= 500 { self.store.release_idempotency(scope).await } else { self.store.complete_idempotency(scope, status, body, self.now()).await };
        if let Err(e) = res {
            tracing::error!(error = %e, "could not record an idempotent result");
        }
    }

    pub async fn release_idempotency(&self, scope: &str) {
        if let Err(e) = self.store.release_idempotency(scope).await {
            tracing::error!(error = %e, "could not release an idempotency key");
        }
    }
}
