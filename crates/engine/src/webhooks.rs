//! Webhook delivery (§11): the store enqueues events in the transaction of the state
//! change (outbox); this dispatcher signs and POSTs them, at least once, retrying on the
//! schedule, under the SSRF policy. Leases in the store keep replicas from sending one
//! delivery twice at the same time; a restart resumes pending deliveries.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use store::WebhookDelivery;
use tokio::sync::watch;

use crate::Engine;

/// The webhook settings (`Debug` never shows the secret).
#[derive(Clone, Default)]
pub struct WebhookConfig {
    pub url: Option<String>,
    pub secret: String,
    /// Delays before each retry; after the last, a delivery is dropped.
    pub retry: Vec<Duration>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig").field("url", &self.url).field("secret", &"<redacted>").field("retry", &self.retry).finish()
    }
}

impl WebhookConfig {
    /// §11's schedule: 10 s, 1 min, 5 min, 30 min, 2 h.
    pub fn default_retry() -> Vec<Duration> {
        [10, 60, 300, 1800, 7200].into_iter().map(Duration::from_secs).collect()
    }
}

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("hmac takes any key length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// The JSON body of a delivery: ids and states, never content.
pub fn body(d: &WebhookDelivery) -> Vec<u8> {
    let data: Value = serde_json::from_str(&d.data).unwrap_or(Value::Null);
    let data = match data {
        // `null` members (a personal session's team) are left out.
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    };
    json!({"id": d.id, "type": d.event_type, "created_at": wire::time::v1(d.created_at), "data": data}).to_string().into_bytes()
}

impl Engine {
    pub fn start_webhook_dispatcher(self: &Arc<Self>, config: WebhookConfig, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        if config.url.is_none() {
            return vec![];
        }
        let engine = self.clone();
        vec![tokio::spawn(async move { engine.webhook_loop(config, shutdown).await })]
    }

    async fn webhook_loop(self: Arc<Self>, config: WebhookConfig, shutdown: watch::Receiver<bool>) {
        let owner = format!("{}/h", self.process_id);
        // Deliveries this process was sending when it stopped are sent again at once.
        if let Err(e) = self.store.release_webhook_leases(&self.own_lease_prefix()).await {
            tracing::warn!(error = %e, "releasing webhook delivery leases failed");
        }
        let config = Arc::new(config);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let now = self.now();
            match self.store.claim_webhooks(&owner, now, now + 60_000_000, 16).await {
                Ok(batch) if !batch.is_empty() => {
                    let sends = batch.into_iter().map(|d| {
                        let (engine, config, owner) = (self.clone(), config.clone(), owner.clone());
                        async move { engine.deliver(&config, &owner, d).await }
                    });
                    futures::future::join_all(sends).await;
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "claiming webhook deliveries failed"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn deliver(&self, config: &WebhookConfig, owner: &str, d: WebhookDelivery) {
        let payload = body(&d);
        let t = self.now() / 1_000_000;
        let headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("openloop-signature".to_string(), signature(&config.secret, t, &payload)),
            ("openloop-event-id".to_string(), d.id.clone()),
        ];
        let text = String::from_utf8_lossy(&payload).into_owned();
        let result = match self.http.get() {
            None => Err("outbound HTTP is not configured".to_string()),
            // Success is a 2xx within 10 s.
            Some(http) => match tokio::time::timeout(Duration::from_secs(10), http.request("POST", &d.url, &headers, Some(text))).await {
                Err(_) => Err("no answer within 10 s".to_string()),
                Ok(Err(e)) => Err(e.message),
                Ok(Ok(r)) => match r.get("status").and_then(Value::as_u64) {
                    Some(s) if (200..300).contains(&s) => Ok(()),
                    s => Err(format!("answered {}", s.map(|s| s.to_string()).unwrap_or_else(|| "nothing".into()))),
                },
            },
        };
        let settled = match result {
            Ok(()) => self.store.settle_webhook(&d.id, owner, true, None, None).await,
            Err(msg) => {
                let retry_at = config.retry.get(d.attempts as usize).map(|delay| self.now() + delay.as_micros() as i64);
                if retry_at.is_none() {
                    tracing::warn!(event_id = %d.id, event_type = %d.event_type, error = %msg, attempts = d.attempts + 1, "webhook dropped after its last retry");
                } else {
                    tracing::info!(event_id = %d.id, error = %msg, "webhook delivery failed; will retry");
                }
                self.store.settle_webhook(&d.id, owner, false, retry_at, Some(&msg)).await
            }
        };
        if let Err(e) = settled {
            tracing::warn!(event_id = %d.id, error = %e, "recording a webhook delivery failed; it will be sent again");
        }
    }
}
