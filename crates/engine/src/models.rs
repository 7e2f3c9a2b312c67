//! Keeping the model catalogue current: Ollama and an OpenAI-compatible server can
//! gain models while Openloop runs (`ollama pull`), so their lists are asked again on
//! use (an unknown model named by G2/G4, or `GET /models`), not only at start-up.

use std::time::Duration;

use crate::Engine;

/// How long one server may take to list its models.
const LIST_TIMEOUT: Duration = Duration::from_secs(3);
/// `GET /models` asks the servers again at most this often.
pub const LIST_MAX_AGE: Duration = Duration::from_secs(30);
/// An unknown model name asks them again at most this often (a typo must not turn
/// every request into a round trip to the servers).
pub const MISS_MAX_AGE: Duration = Duration::from_secs(5);

impl Engine {
    /// Asks the configured model servers for their lists when the last answer is older
    /// than `max_age`, and adds what they report to the catalogue.
    pub async fn refresh_models(&self, max_age: Duration) {
        let has_server = self.providers.ollama().is_some() || self.custom_openai().is_some();
        if !has_server || !self.catalogue.refresh_due(max_age) {
            return;
        }
        let mut found = Vec::new();
        if let Some(c) = self.custom_openai() {
            match tokio::time::timeout(LIST_TIMEOUT, c.list_models()).await {
                Ok(Ok(models)) => found.extend(models.into_iter().map(|m| format!("openai/{m}"))),
                Ok(Err(e)) => tracing::warn!(error = %e, "could not list the OpenAI-compatible server's models"),
                Err(_) => tracing::warn!("listing the OpenAI-compatible server's models timed out"),
            }
        }
        if let Some(c) = self.providers.ollama() {
            match tokio::time::timeout(LIST_TIMEOUT, c.list_models()).await {
                Ok(Ok(models)) => found.extend(models.into_iter().map(|m| format!("ollama/{m}"))),
                Ok(Err(e)) => tracing::warn!(error = %e, "could not list Ollama's models"),
                Err(_) => tracing::warn!("listing Ollama's models timed out"),
            }
        }
        self.catalogue.add_discovered(&found);
    }

    /// The OpenAI client when it points at a server other than OpenAI's own (whose list
    /// is long and whose models the built-in catalogue already names).
    fn custom_openai(&self) -> Option<std::sync::Arc<llm::OpenAiClient>> {
        self.providers.openai().filter(|c| c.base_url().trim_end_matches('/') != llm::openai::DEFAULT_BASE_URL.trim_end_matches('/'))
    }

    /// G2/G4's model check: a name not in the catalogue may be a model the server gained
    /// since the last look.
    pub async fn model_accepted(&self, model: &str) -> bool {
        if self.catalogue.accepts(model) {
            return true;
        }
        let (provider, _) = crate::catalogue::provider_of(model);
        if matches!(provider, crate::catalogue::Provider::Ollama | crate::catalogue::Provider::OpenAi) {
            self.refresh_models(MISS_MAX_AGE).await;
            return self.catalogue.accepts(model);
        }
        false
    }
}
