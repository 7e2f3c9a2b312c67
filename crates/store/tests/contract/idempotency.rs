//! `IdempotencyStore`: claims of `Idempotency-Key` scopes.

use store::IdempotencyClaim::{InUse, New, Replay, Reused};

use super::fixtures::*;
use super::Backend;

/// The engine keeps results 24 h and takes over claims untouched for 5 min; tests use
/// their own clock values so expiry and staleness are explicit.
const HOUR: i64 = 3600 * SECOND;

pub async fn claim_complete_replay(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let scope = format!("key_1:POST /v1/sessions::{}", id("idem"));
    let t = now();
    let claim = |fp: &'static [u8], at: i64| {
        let scope = scope.clone();
        let store = store.clone();
        async move { store.claim_idempotency(&scope, fp, at, at - 24 * HOUR, at - HOUR).await.unwrap() }
    };

    assert_eq!(claim(b"fp-a", t).await, New, "first use");
    assert_eq!(claim(b"fp-a", t + 1).await, InUse, "the same request while the first runs");
    assert_eq!(claim(b"fp-b", t + 2).await, Reused, "another request with the same key");

    s.complete_idempotency(&scope, 201, br#"{"id":"sess_1"}"#, t + 3).await.unwrap();
    assert_eq!(claim(b"fp-a", t + 4).await, Replay { status: 201, body: br#"{"id":"sess_1"}"#.to_vec() }, "replays status and body");
    assert_eq!(claim(b"fp-a", t + 5).await, Replay { status: 201, body: br#"{"id":"sess_1"}"#.to_vec() }, "replays every time");
    assert_eq!(claim(b"fp-b", t + 6).await, Reused, "a different request is still refused after completion");

    // Scopes are independent.
    let other = format!("{scope}-other");
    assert_eq!(s.claim_idempotency(&other, b"fp-a", t, t - 24 * HOUR, t - HOUR).await.unwrap(), New);
    assert_eq!(claim(b"fp-a", t + 7).await, Replay { status: 201, body: br#"{"id":"sess_1"}"#.to_vec() });

    // An empty body replays as empty.
    s.complete_idempotency(&other, 204, b"", t + 8).await.unwrap();
    assert_eq!(s.claim_idempotency(&other, b"fp-a", t + 9, t - 24 * HOUR, t - HOUR).await.unwrap(), Replay { status: 204, body: vec![] });
}

pub async fn stale_takeover_and_expiry(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let t = now();

    // An in-progress claim untouched since before `stale_before` is taken over (crashed request).
    let scope = id("idem");
    assert_eq!(s.claim_idempotency(&scope, b"fp", t, t - 24 * HOUR, t - HOUR).await.unwrap(), New);
    let later = t + 2 * HOUR;
    assert_eq!(s.claim_idempotency(&scope, b"fp", later, later - 24 * HOUR, later - HOUR).await.unwrap(), New, "a stale claim is taken over");
    assert_eq!(s.claim_idempotency(&scope, b"fp", later + 1, later - 24 * HOUR, later - HOUR).await.unwrap(), InUse, "the takeover is itself a live claim");
    // A different request with the key of a stale claim is still refused.
    assert_eq!(s.claim_idempotency(&scope, b"other", later + 2, later - 24 * HOUR, later + HOUR).await.unwrap(), Reused);

    // A completed result is never stale, but it expires: then the key is free for any request.
    let done = id("idem");
    assert_eq!(s.claim_idempotency(&done, b"fp", t, t - 24 * HOUR, t - HOUR).await.unwrap(), New);
    s.complete_idempotency(&done, 200, b"ok", t + 1).await.unwrap();
    let stale_only = t + 2 * HOUR;
    assert_eq!(
        s.claim_idempotency(&done, b"fp", stale_only, stale_only - 24 * HOUR, stale_only - HOUR).await.unwrap(),
        Replay { status: 200, body: b"ok".to_vec() },
        "completed results do not go stale"
    );
    let expired = t + 25 * HOUR;
    assert_eq!(s.claim_idempotency(&done, b"new-fp", expired, expired - 24 * HOUR, expired - HOUR).await.unwrap(), New, "an expired result is replaced");
    assert_eq!(s.claim_idempotency(&done, b"new-fp", expired + 1, expired - 24 * HOUR, expired - HOUR).await.unwrap(), InUse);
    assert_eq!(
        s.claim_idempotency(&done, b"fp", expired + 2, expired - 24 * HOUR, expired - HOUR).await.unwrap(),
        Reused,
        "the new claim's fingerprint counts"
    );
}

pub async fn release_forgets_running_claims(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let t = now();
    let scope = id("idem");
    assert_eq!(s.claim_idempotency(&scope, b"fp", t, t - 24 * HOUR, t - HOUR).await.unwrap(), New);
    s.release_idempotency(&scope).await.unwrap();
    assert_eq!(s.claim_idempotency(&scope, b"other", t + 1, t - 24 * HOUR, t - HOUR).await.unwrap(), New, "a released key is free for any request");

    // Releasing a completed result does nothing: it keeps replaying.
    s.complete_idempotency(&scope, 200, b"kept", t + 2).await.unwrap();
    s.release_idempotency(&scope).await.unwrap();
    assert_eq!(s.claim_idempotency(&scope, b"other", t + 3, t - 24 * HOUR, t - HOUR).await.unwrap(), Replay { status: 200, body: b"kept".to_vec() });

    // Releasing an unknown scope is fine.
    s.release_idempotency("never-claimed").await.unwrap();
}
